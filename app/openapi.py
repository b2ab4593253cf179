"""The OpenAPI 3.1 document of every route, built once from the msgspec schemas."""

from __future__ import annotations

import re
from typing import Any

import msgspec

from app import __version__
from app.models import (
    AnswerRequest,
    AnswerResult,
    AvatarResponse,
    CreateSessionRequest,
    CreateSessionResponse,
    ErrorBody,
    Health,
    LoginRequest,
    MessageBody,
    Profile,
    Results,
    SessionState,
    SettingsRequest,
    SignupRequest,
    SignupResponse,
    TokenResponse,
    ValidationErrorBody,
)

# (method, path, summary, request body, success status and body, error statuses, bearer?)
Operation = tuple[str, str, str, type | None, tuple[int, type | None], tuple[int, ...], bool]

OPERATIONS: list[Operation] = [
    (
        "post",
        "/api/game/session",
        "Start a game (owned by the caller when signed in)",
        CreateSessionRequest,
        (201, CreateSessionResponse),
        (400, 401),
        False,
    ),
    (
        "post",
        "/api/game/answer",
        "Answer one question (idempotent per question)",
        AnswerRequest,
        (200, AnswerResult),
        (400, 401, 403, 404, 503),
        False,
    ),
    (
        "get",
        "/api/game/results/{session_id}",
        "A game's results, with progression once complete",
        None,
        (200, Results),
        (401, 403, 404, 503),
        False,
    ),
    (
        "post",
        "/auth/signup",
        "Create an account",
        SignupRequest,
        (201, SignupResponse),
        (400, 409, 503),
        False,
    ),
    (
        "post",
        "/auth/login",
        "Log in: access token, refresh token in an HttpOnly cookie",
        LoginRequest,
        (200, TokenResponse),
        (400, 401, 429, 503),
        False,
    ),
    (
        "post",
        "/auth/refresh",
        "Rotate the refresh cookie for a new access token",
        None,
        (200, TokenResponse),
        (401, 503),
        False,
    ),
    (
        "post",
        "/auth/logout",
        "Revoke the access token and its refresh token family",
        None,
        (200, MessageBody),
        (401, 503),
        True,
    ),
    (
        "get",
        "/api/users/profile",
        "The signed-in player's profile",
        None,
        (200, Profile),
        (401, 503),
        True,
    ),
    (
        "patch",
        "/api/users/profile/settings",
        "Change the timer multiplier",
        SettingsRequest,
        (200, Profile),
        (400, 401, 503),
        True,
    ),
    (
        "get",
        "/health",
        "Liveness and storage state; 200 while serving, degraded or not; 503 once stopping",
        None,
        (200, Health),
        (),
        False,
    ),
    ("get", "/metrics", "Prometheus metrics (text format)", None, (200, None), (), False),
    ("get", "/openapi.json", "This document", None, (200, None), (), False),
    (
        "get",
        "/api/game/session/{session_id}",
        "A game's public state, to resume it: questions, answer results, limits",
        None,
        (200, SessionState),
        (401, 403, 404, 503),
        False,
    ),
    (
        "post",
        "/api/users/profile/avatar",
        "Upload a picture (multipart field `avatar`: JPEG, PNG or WebP, at most 5 MB)",
        None,  # multipart: see AVATAR_UPLOAD
        (200, AvatarResponse),
        (400, 401, 413, 415, 503),
        True,
    ),
    (
        "get",
        "/uploads/avatars/{file}",
        "A player's picture (WebP), as named by avatarUrl; cacheable for good",
        None,
        (200, None),  # image/webp: see AVATAR_IMAGE
        (404, 503),
        False,
    ),
]

PATH_PARAMETERS: dict[str, dict[str, Any]] = {
    "session_id": {"type": "string", "format": "uuid"},
    "file": {"type": "string", "pattern": r"^[0-9a-f-]{36}\.[0-9a-f]{16}\.webp$"},
}
AVATAR_UPLOAD = {
    "required": True,
    "content": {
        "multipart/form-data": {
            "schema": {
                "type": "object",
                "properties": {"avatar": {"type": "string", "format": "binary"}},
                "required": ["avatar"],
            },
            "encoding": {"avatar": {"contentType": "image/jpeg, image/png, image/webp"}},
        }
    },
}
AVATAR_IMAGE = {
    "description": "OK",
    "content": {"image/webp": {"schema": {"type": "string", "format": "binary"}}},
}


def build() -> dict[str, Any]:
    structs = {s for op in OPERATIONS for s in (op[3], op[4][1]) if s is not None}
    structs |= {ErrorBody, ValidationErrorBody}
    _, components = msgspec.json.schema_components(
        sorted(structs, key=lambda s: s.__name__), ref_template="#/components/schemas/{name}"
    )
    paths: dict[str, dict[str, Any]] = {}
    for method, path, summary, body, (status, result), errors, bearer in OPERATIONS:
        operation: dict[str, Any] = {
            "summary": summary,
            "responses": {
                str(status): _response("OK", result),
                **{str(code): _response("Error", _error_body(path, code)) for code in errors},
            },
        }
        if body is not None:
            operation["requestBody"] = {
                "required": body is not CreateSessionRequest,
                "content": {"application/json": {"schema": _ref(body)}},
            }
        if names := re.findall(r"{(\w+)}", path):
            operation["parameters"] = [
                {"name": name, "in": "path", "required": True, "schema": PATH_PARAMETERS[name]}
                for name in names
            ]
        if bearer:
            operation["security"] = [{"bearer": []}]
        paths.setdefault(path, {})[method] = operation
    paths["/api/users/profile/avatar"]["post"]["requestBody"] = AVATAR_UPLOAD
    paths["/uploads/avatars/{file}"]["get"]["responses"]["200"] = AVATAR_IMAGE
    paths["/health"]["get"]["responses"]["503"] = _response("Stopping (SIGTERM)", Health)
    return {
        "openapi": "3.1.0",
        "info": {"title": "Civic Trivia Championship game service", "version": __version__},
        "paths": paths,
        "components": {
            "schemas": components,
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"}
            },
        },
    }


def _ref(struct: type) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{struct.__name__}"}


def _error_body(path: str, status: int) -> type:
    return ValidationErrorBody if (path, status) == ("/auth/signup", 400) else ErrorBody


def _response(description: str, body: type | None) -> dict[str, Any]:
    if body is None:
        return {"description": description}
    return {"description": description, "content": {"application/json": {"schema": _ref(body)}}}
