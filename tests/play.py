"""Helpers that play the game through the HTTP API, as a client would."""

from __future__ import annotations

import asyncio
import random
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
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


# Responses a client retries: 503 (the service says when, Retry-After) and, behind a balancer,
# 502 and 504 (an instance died with the request, or did not answer); and connection errors.
RETRIED = (502, 503, 504)


@dataclass
class Ledger:
    """What a group of players saw and what the service acknowledged them."""

    statuses: Counter[int] = field(default_factory=Counter)  # every response, retried ones too
    retried: Counter[str] = field(default_factory=Counter)  # "503", "ConnectError", ...
    served_by: Counter[str] = field(default_factory=Counter)  # the instance's request-id prefix
    acknowledged: dict[tuple[str, str], int] = field(default_factory=dict)  # -> totalPoints
    started: set[str] = field(default_factory=set)
    finished: set[str] = field(default_factory=set)
    degraded: int = 0  # games created in an instance's memory
    requests: int = 0


@dataclass
class Player:
    """Plays complete games one after another as a client would, retrying RETRIED statuses and
    connection errors (for up to `patience` seconds per request, `pause` apart: the tests do not
    wait the full Retry-After, which only makes them slower).

    `route()` names where each request goes: a balancer, or the next instance (players hopping
    between instances). A browser keeps cookies (the balancer's affinity); a cookie-less client
    drops them before every request. A bursting player sends a game's answers all at once."""

    client: httpx.AsyncClient
    bank: QuestionBank
    ledger: Ledger
    route: Callable[[], str]
    cookies: bool = True
    burst: bool = False
    patience: float = 30.0
    pause: float = 0.05

    async def request(self, method: str, path: str, body: Json | None = None) -> httpx.Response:
        deadline = time.monotonic() + self.patience
        while True:
            if not self.cookies:
                self.client.cookies.clear()
            try:
                response = await self.client.request(method, self.route() + path, json=body)
            except httpx.TransportError as exc:
                self.ledger.retried[type(exc).__name__] += 1
                if time.monotonic() > deadline:
                    raise
                await asyncio.sleep(self.pause)
                continue
            self.ledger.statuses[response.status_code] += 1
            self.ledger.served_by[response.headers.get("x-request-id", "-").split("-")[0]] += 1
            if response.status_code not in RETRIED or time.monotonic() > deadline:
                return response
            assert response.headers["retry-after"], response.text
            self.ledger.retried[str(response.status_code)] += 1
            await asyncio.sleep(self.pause)

    async def play(self, stop: asyncio.Event) -> None:
        """Games until `stop`; the game in hand is finished first."""
        while not stop.is_set():
            await self.game()

    async def game(self) -> str:
        created = await self.request("POST", "/api/game/session")
        assert created.status_code == 201, created.text
        game: Json = created.json()
        self.ledger.started.add(game["sessionId"])
        self.ledger.degraded += game["degraded"]
        last = len(game["questions"]) - 1
        if self.burst:  # a wager of 0 is within the limit whatever arrives first
            wagers = [None] * last + [0]
            await asyncio.gather(*(self.answer(game, i, wagers[i]) for i in range(last + 1)))
        else:
            score = 0
            for i in range(last + 1):
                score += await self.answer(game, i, score // 2 if i == last else None)
        done = await self.request("GET", f"/api/game/results/{game['sessionId']}")
        assert done.status_code == 200, done.text
        assert done.json()["complete"] is True, done.text
        self.ledger.finished.add(game["sessionId"])
        return str(game["sessionId"])

    async def answer(self, game: Json, index: int, wager: int | None) -> int:
        extra = {} if wager is None else {"wager": wager}
        body = answer_body(game, index, self.bank, correct=random.random() < 0.7, **extra)
        reply = await self.request("POST", "/api/game/answer", body)
        assert reply.status_code == 200, reply.text
        points: int = reply.json()["totalPoints"]
        self.ledger.acknowledged[(game["sessionId"], body["questionId"])] = points
        return points


async def read_back(url: str, ledger: Ledger) -> dict[str, int]:
    """Every game of the ledger read back through `url`: acknowledged answers missing, changed
    or doubled, and games not complete."""
    stored: dict[str, list[Json]] = {}
    incomplete = 0
    async with httpx.AsyncClient(base_url=url, timeout=10) as client:
        for sid in sorted(ledger.started):
            done = await results(client, sid)
            stored[sid] = done["answers"]
            incomplete += not done["complete"]
    missing = changed = doubled = 0
    for answers in stored.values():
        seen = Counter(a["questionId"] for a in answers)
        doubled += sum(n - 1 for n in seen.values())
    points = {(sid, a["questionId"]): a["totalPoints"] for sid, x in stored.items() for a in x}
    for key, acknowledged in ledger.acknowledged.items():
        if key not in points:
            missing += 1
        elif points[key] != acknowledged:
            changed += 1
    return {
        "games": len(stored),
        "answers": len(ledger.acknowledged),
        "missing": missing,
        "changed": changed,
        "doubled": doubled,
        "incomplete": incomplete,
    }
