"""HTTP handlers: decode, call the game, encode. Nothing else lives here."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeVar

import msgspec
from starlette.requests import Request
from starlette.responses import Response

from app import __version__
from app.errors import BodyTooLarge, InvalidInput
from app.game import Game
from app.models import AnswerRequest, CreateSessionRequest, Health

T = TypeVar("T")

_encode = msgspec.json.Encoder().encode
_decode_create = msgspec.json.Decoder(CreateSessionRequest).decode
_decode_answer = msgspec.json.Decoder(AnswerRequest).decode


def json_response(
    body: Any, status_code: int = 200, headers: Mapping[str, str] | None = None
) -> Response:
    return Response(_encode(body), status_code, headers, media_type="application/json")


def game_of(request: Request) -> Game:
    game: Game = request.state.game
    return game


MAX_BODY_BYTES = 64 * 1024


async def read_body(request: Request) -> bytes:
    """The body, refused as soon as it is known to exceed the limit (never read whole).

    Done here rather than with Starlette's body-limit middleware, whose 413 is plain text and
    could not carry the `{"error": ...}` body every client of this API expects.
    """
    length = request.headers.get("content-length", "")
    if length.isdigit() and int(length) > MAX_BODY_BYTES:
        raise BodyTooLarge(MAX_BODY_BYTES)
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > MAX_BODY_BYTES:
            raise BodyTooLarge(MAX_BODY_BYTES)
        chunks.append(chunk)
    return b"".join(chunks)


async def decode(request: Request, decoder: Any, empty: T | None = None) -> T:
    body = await read_body(request)
    if not body.strip() and empty is not None:
        return empty
    try:
        decoded: T = decoder(body)
    except msgspec.DecodeError as exc:
        raise InvalidInput(f"Invalid request body: {exc}") from exc
    return decoded


async def create_session(request: Request) -> Response:
    body = await decode(request, _decode_create, empty=CreateSessionRequest())
    created = await game_of(request).create_session(body.question_ids)
    return json_response(created, 201)


async def submit_answer(request: Request) -> Response:
    body: AnswerRequest = await decode(request, _decode_answer)
    return json_response(await game_of(request).answer(body))


async def results(request: Request) -> Response:
    return json_response(await game_of(request).results(request.path_params["session_id"]))


async def health(request: Request) -> Response:
    game = game_of(request)
    store = game.store
    if store.kind == "memory":
        redis = "not-configured"
    else:
        redis = "connected" if await store.ping() else "disconnected"
    return json_response(
        Health(
            status="degraded" if game.degraded else "ok",
            storage=store.kind,
            redis=redis,
            fallback_mode=game.degraded,
            version=__version__,
        )
    )
