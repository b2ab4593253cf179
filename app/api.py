"""HTTP handlers: decode, call the game or the accounts, encode. Nothing else lives here."""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any, TypeVar

import msgspec
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response

from app import __version__, openapi
from app.auth import (
    REFRESH_COOKIE,
    TIMER_MULTIPLIERS,
    Auth,
    Identity,
    Issued,
    profile_of,
    user_view,
)
from app.errors import BodyTooLarge, InvalidInput, Unauthorized
from app.game import Game
from app.models import (
    AnswerRequest,
    CreateSessionRequest,
    ErrorBody,
    Health,
    LoginRequest,
    MessageBody,
    SettingsRequest,
    SignupRequest,
    SignupResponse,
)

T = TypeVar("T")
MAX_BODY_BYTES = 64 * 1024

_encode = msgspec.json.Encoder().encode
_decode_create = msgspec.json.Decoder(CreateSessionRequest).decode
_decode_answer = msgspec.json.Decoder(AnswerRequest).decode
_decode_signup = msgspec.json.Decoder(SignupRequest).decode
_decode_login = msgspec.json.Decoder(LoginRequest).decode
_decode_settings = msgspec.json.Decoder(SettingsRequest).decode


def json_response(
    body: Any, status_code: int = 200, headers: Mapping[str, str] | None = None
) -> Response:
    return Response(_encode(body), status_code, headers, media_type="application/json")


def game_of(request: Request) -> Game:
    game: Game = request.state.game
    return game


def auth_of(request: Request) -> Auth:
    auth: Auth = request.state.auth
    return auth


async def read_body(request: Request) -> bytes:
    """The body, refused as soon as it is known to exceed the limit (never read whole).

    Done here rather than with Starlette's body-limit middleware, whose 413 is plain text and
    could not carry the `{"error": ...}` body every client of this API expects.
    """
    length = request.headers.get("content-length", "")
    if length.isdigit() and int(length) > MAX_BODY_BYTES:
        raise BodyTooLarge(MAX_BODY_BYTES)
    chunks, size = [], 0
    while True:  # ASGI receive directly: Request.stream's async generator costs more
        message = await request.receive()
        if message["type"] == "http.disconnect":
            raise ClientDisconnect()
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > MAX_BODY_BYTES:
            raise BodyTooLarge(MAX_BODY_BYTES)
        chunks.append(chunk)
        if not message.get("more_body", False):
            return chunks[0] if len(chunks) == 1 else b"".join(chunks)


async def decode(request: Request, decoder: Any, empty: T | None = None) -> T:
    body = await read_body(request)
    if not body.strip() and empty is not None:
        return empty
    try:
        decoded: T = decoder(body)
    except msgspec.DecodeError as exc:
        raise InvalidInput(f"Invalid request body: {exc}") from exc
    return decoded


async def player(request: Request) -> Identity | None:
    headers = request.headers
    authorization = headers.get("authorization")
    if authorization is None and "cookie" not in headers:
        return None  # anonymous: the common case, without parsing cookies
    return await auth_of(request).player(authorization, REFRESH_COOKIE in request.cookies)


async def signed_in(request: Request) -> Identity:
    return await auth_of(request).authenticate(request.headers.get("authorization"))


# --- game ---------------------------------------------------------------------------------------


async def create_session(request: Request) -> Response:
    body = await decode(request, _decode_create, empty=CreateSessionRequest())
    created = await game_of(request).create_session(body.question_ids, await player(request))
    return json_response(created, 201)


async def submit_answer(request: Request) -> Response:
    body: AnswerRequest = await decode(request, _decode_answer)
    return json_response(await game_of(request).answer(body, await player(request)))


async def results(request: Request) -> Response:
    session_id = request.path_params["session_id"]
    return json_response(await game_of(request).results(session_id, await player(request)))


# --- accounts -----------------------------------------------------------------------------------


def with_refresh_cookie(response: Response, request: Request, token: str | None) -> Response:
    """Set (or, with None, clear) the HttpOnly refresh-token cookie."""
    settings = auth_of(request).settings
    if token is None:
        response.delete_cookie(
            REFRESH_COOKIE,
            path="/",
            secure=settings.cookie_secure,
            httponly=True,
            samesite="strict",
        )
    else:
        response.set_cookie(
            REFRESH_COOKIE,
            token,
            max_age=settings.refresh_token_seconds,
            path="/",
            secure=settings.cookie_secure,
            httponly=True,
            samesite="strict",
        )
    return response


async def signup(request: Request) -> Response:
    body: SignupRequest = await decode(request, _decode_signup)
    user = await auth_of(request).signup(body)
    created = SignupResponse(message="Account created: log in to play", user=user_view(user))
    return json_response(created, 201)


async def login(request: Request) -> Response:
    body: LoginRequest = await decode(request, _decode_login)
    issued: Issued = await auth_of(request).login(body)
    return with_refresh_cookie(json_response(issued.body), request, issued.refresh_token)


async def refresh(request: Request) -> Response:
    try:
        issued = await auth_of(request).refresh(request.cookies.get(REFRESH_COOKIE))
    except Unauthorized as exc:
        # A dead cookie would keep turning game calls into 401s: clear it with the refusal.
        failed = json_response(ErrorBody(str(exc)), 401)
        return with_refresh_cookie(failed, request, None)
    return with_refresh_cookie(json_response(issued.body), request, issued.refresh_token)


async def logout(request: Request) -> Response:
    await auth_of(request).logout(await signed_in(request))
    return with_refresh_cookie(json_response(MessageBody("Logged out")), request, None)


async def profile(request: Request) -> Response:
    identity = await signed_in(request)
    user = await auth_of(request).accounts.user(identity.user_id)
    if user is None:
        raise Unauthorized("Account not found: sign up again")
    return json_response(profile_of(user))


async def update_settings(request: Request) -> Response:
    identity = await signed_in(request)
    body: SettingsRequest = await decode(request, _decode_settings)
    if body.timer_multiplier not in TIMER_MULTIPLIERS:
        raise InvalidInput("timerMultiplier must be one of 1.0, 1.5 or 2.0")
    accounts = auth_of(request).accounts
    user = await accounts.set_timer_multiplier(identity.user_id, body.timer_multiplier)
    if user is None:
        raise Unauthorized("Account not found: sign up again")
    return json_response(profile_of(user))


# --- operations ---------------------------------------------------------------------------------


async def health(request: Request) -> Response:
    """Always 200 while the process serves: a 503 during a Redis outage would make a load
    balancer drop every instance at once. Reads state only; never waits on Redis."""
    game = game_of(request)
    status = game.store.status()
    degraded = status.fallback_mode or status.fallback_sessions > 0
    return json_response(
        Health(
            **msgspec.structs.asdict(status),
            status="degraded" if degraded else "ok",
            uptime_seconds=round(time.monotonic() - game.started_at, 1),
            version=__version__,
        )
    )


_OPENAPI = _encode(openapi.build())


async def openapi_document(request: Request) -> Response:
    return Response(_OPENAPI, media_type="application/json")


async def metrics(request: Request) -> Response:
    game = game_of(request)
    return Response(game.metrics.render(), media_type=game.metrics.content_type)
