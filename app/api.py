"""HTTP handlers: decode, call the game, encode. Nothing else lives here."""

from __future__ import annotations

import time
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


async def metrics(request: Request) -> Response:
    game = game_of(request)
    return Response(game.metrics.render(), media_type=game.metrics.content_type)
