"""The apps the compare mode measures beside the service, each one uvicorn worker:

- `constant_app`: a bare Starlette route returning a constant JSON body (the framework ceiling);
- `floor_app`: the unavoidable work of an answer — decode the body, one EVALSHA (EXISTS +
  JSON.ARRAPPEND + PEXPIRE), encode a small reply — on the same Redis (the stack's floor);
- `baseline_app`: sessions stored the way the original game did after moving to Redis: the
  whole session (with copies of its questions) as one JSON string, read, changed in Python and
  written back with SET EX — two round trips and a lost update whenever two answers of one
  game overlap.

All offer `POST /api/game/session` and `POST /api/game/answer` with the service's bodies.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import msgspec
from redis.asyncio import Redis
from redis.exceptions import NoScriptError
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from app import rules
from app.models import AnswerRequest, CreateSessionRequest
from app.questions import QuestionBank
from app.redis_link import AutoPipeline, connect
from app.settings import Settings

TTL = 3600
_encode = msgspec.json.Encoder().encode
_decode_answer = msgspec.json.Decoder(AnswerRequest).decode
_decode_create = msgspec.json.Decoder(CreateSessionRequest).decode


def _json(body: Any, status: int = 200) -> Response:
    return Response(_encode(body), status, media_type="application/json")


def _redis() -> Redis:
    """The service's own client configuration (bounded timeouts, blocking pool): a bounded
    call is part of the unavoidable work of a route that must never hang on Redis."""
    client = connect(Settings(redis_url=os.environ["REDIS_URL"]))
    assert isinstance(client, Redis)
    return client


def _lifespan(state: dict[str, Any]) -> Any:
    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        yield
        if "redis" in state:
            await state["redis"].aclose()

    return lifespan


# --- the framework's ceiling ---------------------------------------------------------------------

_CONSTANT = _encode({"questionId": "q001", "correct": True, "totalPoints": 150})


def constant_app() -> Starlette:
    async def constant(request: Request) -> Response:
        return Response(_CONSTANT, media_type="application/json")

    async def create(request: Request) -> Response:
        body = await request.body()
        ids = _decode_create(body).question_ids if body else None
        return _json({"sessionId": str(uuid.uuid4()), "questions": [{"id": q} for q in ids or []]})

    return Starlette(
        routes=[
            Route("/api/game/session", create, methods=["POST"]),
            Route("/api/game/answer", constant, methods=["POST"]),
        ]
    )


# --- the stack's floor ---------------------------------------------------------------------------

FLOOR_SCRIPT = """
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
redis.call('JSON.ARRAPPEND', KEYS[1], '.a', ARGV[1])
redis.call('PEXPIRE', KEYS[1], ARGV[2])
return 1
"""


def floor_app() -> Starlette:
    """With FLOOR_PIPELINE=true its EVALSHA calls go through the service's AutoPipeline."""
    state: dict[str, Any] = {}
    redis = state["redis"] = _redis()
    script = redis.register_script(FLOOR_SCRIPT)
    pipeline = AutoPipeline(redis) if os.environ.get("FLOOR_PIPELINE") == "true" else None

    async def create(request: Request) -> Response:
        ids = _decode_create(await request.body()).question_ids or []
        sid = str(uuid.uuid4())
        doc = _encode({"q": ids, "a": []})
        await redis.execute_command("JSON.SET", f"session:{sid}", ".", doc)  # type: ignore[no-untyped-call]
        return _json({"sessionId": sid, "questions": [{"id": q} for q in ids]}, 201)

    async def answer(request: Request) -> Response:
        body = _decode_answer(await request.body())
        entry = _encode([body.question_id, body.selected_option, body.time_remaining])
        key = f"session:{body.session_id}"
        if pipeline is None:
            ok = await script(keys=[key], args=[entry, TTL * 1000])
        else:
            try:
                ok = await pipeline.call("EVALSHA", script.sha, 1, key, entry, TTL * 1000)
            except NoScriptError:  # a fresh Redis: load it once, as the service does
                await redis.script_load(FLOOR_SCRIPT)
                ok = await pipeline.call("EVALSHA", script.sha, 1, key, entry, TTL * 1000)
        return _json({"questionId": body.question_id, "stored": bool(ok)})

    return Starlette(
        routes=[
            Route("/api/game/session", create, methods=["POST"]),
            Route("/api/game/answer", answer, methods=["POST"]),
        ],
        lifespan=_lifespan(state),
    )


# --- the original strategy -----------------------------------------------------------------------


def baseline_app() -> Starlette:
    state: dict[str, Any] = {}
    redis = state["redis"] = _redis()
    bank = QuestionBank.load()

    async def create(request: Request) -> Response:
        raw = await request.body()
        ids = (_decode_create(raw).question_ids if raw else None) or bank.draw(10)
        sid = str(uuid.uuid4())
        session = {
            "sessionId": sid,
            "questions": [msgspec.to_builtins(bank.get(q)) for q in ids],  # full copies
            "answers": [],
        }
        await redis.set(f"session:{sid}", _encode(session), ex=TTL)
        return _json({"sessionId": sid, "questions": [bank.public(q) for q in ids]}, 201)

    async def answer(request: Request) -> Response:
        body = _decode_answer(await request.body())
        key = f"session:{body.session_id}"
        raw = await redis.get(key)
        if raw is None:
            return _json({"error": "Game session not found"}, 404)
        session = msgspec.json.decode(raw)
        for stored in session["answers"]:
            if stored["questionId"] == body.question_id:
                return _json(stored)
        position = [q["id"] for q in session["questions"]].index(body.question_id)
        final = position == len(session["questions"]) - 1
        question = bank.get(body.question_id)
        scored = rules.score_answer(
            question,
            body.selected_option,
            body.time_remaining,
            50 if final else 25,
            final=final,
            wager=body.wager if final else None,
        )
        result = {
            "questionId": body.question_id,
            "questionIndex": position,
            "selectedOption": scored.selected_option,
            "correct": scored.correct,
            "correctAnswer": question.correct_answer,
            "explanation": question.explanation,
            "basePoints": scored.base_points,
            "speedBonus": scored.speed_bonus,
            "totalPoints": scored.total_points,
            "responseTime": scored.response_time,
            "flagged": scored.flagged,
        }
        session["answers"].append(result)
        await redis.set(key, _encode(session), ex=TTL)  # the whole session, last writer wins
        return _json(result)

    async def results(request: Request) -> Response:
        raw = await redis.get(f"session:{request.path_params['session_id']}")
        if raw is None:
            return _json({"error": "Game session not found"}, 404)
        answers = sorted(msgspec.json.decode(raw)["answers"], key=lambda a: a["questionIndex"])
        return _json({"answers": answers, "totalScore": sum(a["totalPoints"] for a in answers)})

    return Starlette(
        routes=[
            Route("/api/game/session", create, methods=["POST"]),
            Route("/api/game/answer", answer, methods=["POST"]),
            Route("/api/game/results/{session_id}", results, methods=["GET"]),
        ],
        lifespan=_lifespan(state),
    )
