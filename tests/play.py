"""Helpers that play the game through the HTTP API, as a client would."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import httpx

from app.questions import QuestionBank

Json = dict[str, Any]


async def new_game(client: httpx.AsyncClient, body: Json | None = None) -> Json:
    response = await client.post("/api/game/session", json=body)
    assert response.status_code == 201, response.text
    game: Json = response.json()
    return game


def answer_body(
    game: Json,
    index: int,
    bank: QuestionBank,
    *,
    correct: bool = True,
    remaining: float = 20.0,
    **extra: Any,
) -> Json:
    qid = game["questions"][index]["id"]
    right = bank.get(qid).correct_answer
    return {
        "sessionId": game["sessionId"],
        "questionId": qid,
        "selectedOption": right if correct else (right + 1) % 4,
        "timeRemaining": remaining,
        **extra,
    }


async def answer(client: httpx.AsyncClient, body: Json) -> Json:
    response = await client.post("/api/game/answer", json=body)
    assert response.status_code == 200, response.text
    result: Json = response.json()
    return result


async def results(client: httpx.AsyncClient, session_id: str) -> Json:
    response = await client.get(f"/api/game/results/{session_id}")
    assert response.status_code == 200, response.text
    body: Json = response.json()
    return body


async def health_until(client: httpx.AsyncClient, field: str, value: object) -> Json:
    """Poll /health until `field` has `value` (at most 20 s), and return it."""
    deadline = time.monotonic() + 20
    while True:
        health: Json = (await client.get("/health")).json()
        if health[field] == value:
            return health
        assert time.monotonic() < deadline, health
        await asyncio.sleep(0.05)
