"""Redis faults against real processes: a paused Redis, a killed one, one that starts late.

Each test has its own redis-server (JSON module, AOF) and uvicorn processes with a fast probe.
The timeout budget of one request is pool wait + 2 x REDIS_TIMEOUT_SECONDS (one retry):
0.75 s with the defaults, asserted here as "every request answered within 1 s".
"""

from __future__ import annotations

import asyncio
import shutil
import signal
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

import httpx
import pytest

from app.questions import QuestionBank
from tests.conftest import METRICS
from tests.play import Json, answer, answer_body, new_game, results
from tests.servers import ApiProcess, LocalRedis, free_port

pytestmark = [pytest.mark.processes, pytest.mark.timeout(120)]

BUDGET_SECONDS = 1.0
FAST_PROBE = {"BREAKER_PROBE_SECONDS": "0.2"}


@pytest.fixture
def redis_server() -> Iterator[LocalRedis]:
    server = LocalRedis()
    server.start(appendonly=True)
    yield server
    if server.process is not None:
        server.signal(signal.SIGCONT)
    server.stop()
    shutil.rmtree(server.directory, ignore_errors=True)


@pytest.fixture
def start_api() -> Iterator[type[ApiProcess]]:
    started: list[ApiProcess] = []

    class Tracked(ApiProcess):
        def start(self, timeout: float = 30.0) -> None:
            started.append(self)
            super().start(timeout)

    yield Tracked
    for process in started:
        process.kill()


async def wait_for(client: httpx.AsyncClient, predicate_key: str, value: object) -> Json:
    """Poll /health until a field has the value (bounded)."""
    deadline = time.monotonic() + 15
    while True:
        health: Json = (await client.get("/health")).json()
        if health[predicate_key] == value:
            return health
        assert time.monotonic() < deadline, health
        await asyncio.sleep(0.1)


def metric(text: str, name: str) -> float:
    for line in text.splitlines():
        if line.startswith(name + " ") or line.startswith(name + "{"):
            return float(line.rsplit(" ", 1)[1])
    raise AssertionError(f"{name} not in metrics")


@dataclass
class Player:
    """Plays games in a loop, retrying 503s like a client, recording every acknowledgement."""

    client: httpx.AsyncClient
    bank: QuestionBank
    latencies: list[float] = field(default_factory=list)
    statuses: list[int] = field(default_factory=list)
    acknowledged: dict[tuple[str, str], Json] = field(default_factory=dict)

    async def request(self, method: str, url: str, body: Json | None = None) -> httpx.Response:
        while True:
            started = time.perf_counter()
            response = await self.client.request(method, url, json=body)
            self.latencies.append(time.perf_counter() - started)
            self.statuses.append(response.status_code)
            if response.status_code != 503:
                return response
            assert response.headers["retry-after"]
            await asyncio.sleep(0.05)

    async def play(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            game = (await self.request("POST", "/api/game/session")).json()
            for i in range(10):
                body = answer_body(game, i, self.bank, correct=i % 3 != 0, remaining=12)
                reply = await self.request("POST", "/api/game/answer", body)
                assert reply.status_code == 200, reply.text
                self.acknowledged[(game["sessionId"], body["questionId"])] = reply.json()
            await self.request("GET", f"/api/game/results/{game['sessionId']}")


async def test_paused_redis_every_request_within_budget_nothing_lost(
    redis_server: LocalRedis, start_api: type[ApiProcess], bank: QuestionBank
) -> None:
    api = start_api({"REDIS_URL": redis_server.url, **FAST_PROBE})
    api.start()
    stop = asyncio.Event()
    async with httpx.AsyncClient(base_url=api.url, timeout=10) as client:
        players = [Player(client, bank) for _ in range(20)]
        tasks = [asyncio.create_task(p.play(stop)) for p in players]
        await asyncio.sleep(1)
        redis_server.signal(signal.SIGSTOP)
        await asyncio.sleep(5)
        redis_server.signal(signal.SIGCONT)
        await asyncio.sleep(2)
        stop.set()
        await asyncio.gather(*tasks)
        await wait_for(client, "fallbackSessions", 0)

        latencies = [t for p in players for t in p.latencies]
        statuses = {s for p in players for s in p.statuses}
        assert max(latencies) < BUDGET_SECONDS, sorted(latencies)[-5:]
        assert statuses <= {200, 201, 503}
        assert 503 in statuses  # games living in Redis could not be served while it was paused
        acknowledged = {k: v for p in players for k, v in p.acknowledged.items()}
        games = {sid for sid, _ in acknowledged}
        assert len(games) > 20
        for sid in games:  # after recovery every acknowledged answer is there, exactly once
            stored = {a["questionId"]: a for a in (await results(client, sid))["answers"]}
            for (game_id, qid), reply in acknowledged.items():
                if game_id == sid:
                    assert stored[qid]["totalPoints"] == reply["totalPoints"]
                    assert stored[qid]["correct"] == reply["correct"]
        metrics = (await client.get("/metrics", headers=METRICS)).text
        assert metric(metrics, 'redis_breaker_transitions_total{to="open"}') >= 1
        assert metric(metrics, 'redis_breaker_transitions_total{to="closed"}') >= 1


@pytest.mark.parametrize("restart", ["from-aof", "empty"])
async def test_killed_redis_fallback_and_write_back(
    redis_server: LocalRedis, start_api: type[ApiProcess], bank: QuestionBank, restart: str
) -> None:
    one = start_api({"REDIS_URL": redis_server.url, **FAST_PROBE})
    two = start_api({"REDIS_URL": redis_server.url, **FAST_PROBE})
    one.start()
    two.start()
    async with (
        httpx.AsyncClient(base_url=one.url, timeout=10) as a,
        httpx.AsyncClient(base_url=two.url, timeout=10) as b,
    ):
        before = await new_game(a)
        early = [await answer(a, answer_body(before, i, bank)) for i in range(3)]
        account = {"email": f"{restart}@example.org", "password": "Correct-Horse-9", "name": "Ada"}
        assert (await b.post("/auth/signup", json=account)).status_code == 201
        credentials = {"email": account["email"], "password": account["password"]}
        login = await b.post("/auth/login", json=credentials)
        bearer = {"authorization": f"Bearer {login.json()['accessToken']}"}
        b.cookies.clear()

        redis_server.stop()  # SIGKILL
        refused = await a.post("/api/game/answer", json=answer_body(before, 3, bank))
        assert refused.status_code == 503
        assert refused.headers["retry-after"]
        assert "unavailable" in refused.json()["error"]
        health = await wait_for(a, "breaker", "open")
        assert (health["status"], health["redis"], health["fallbackMode"]) == (
            "degraded",
            "disconnected",
            True,
        )
        assert metric((await a.get("/metrics", headers=METRICS)).text, "redis_breaker_open") == 1

        during = await new_game(a)
        assert during["degraded"] is True
        refused_login = await b.post("/auth/login", json=credentials)
        assert refused_login.status_code == 503
        assert refused_login.headers["retry-after"]
        assert "Accounts" in refused_login.json()["error"]
        b.cookies.clear()
        # A signed-in player's token still works for a fallback game (documented trade-off).
        owned = await a.post("/api/game/session", headers=bearer)
        assert owned.status_code == 201
        assert owned.json()["degraded"] is True
        acknowledged = [await answer(a, answer_body(during, i, bank)) for i in range(4)]
        assert (await results(a, during["sessionId"]))["degraded"] is True
        elsewhere = await b.get(f"/api/game/results/{during['sessionId']}")
        assert elsewhere.status_code == 503  # not 404: b cannot know while Redis is down
        assert (await wait_for(a, "fallbackSessions", 2))["status"] == "degraded"

        if restart == "empty":
            shutil.rmtree(redis_server.directory)
            redis_server.directory.mkdir()
        redis_server.start(appendonly=True)
        health = await wait_for(a, "fallbackSessions", 0)
        assert (health["status"], health["breaker"], health["redis"]) == (
            "ok",
            "closed",
            "connected",
        )
        assert metric((await a.get("/metrics", headers=METRICS)).text, "redis_breaker_open") == 0

        # The fallback game continues on the other instance, answers neither lost nor doubled.
        await wait_for(b, "breaker", "closed")
        moved = await results(b, during["sessionId"])
        assert moved["degraded"] is False
        assert [x["totalPoints"] for x in moved["answers"]] == [
            x["totalPoints"] for x in acknowledged
        ]
        retried = await answer(b, answer_body(during, 0, bank, correct=False))
        assert retried == acknowledged[0]
        for i in range(4, 10):
            await answer(b, answer_body(during, i, bank))
        done = await results(b, during["sessionId"])
        assert done["complete"] is True
        assert len(done["answers"]) == 10

        older = await b.get(f"/api/game/results/{before['sessionId']}")
        if restart == "from-aof":
            kept = older.json()["answers"]
            assert [x["totalPoints"] for x in kept] == [x["totalPoints"] for x in early]
        else:
            assert older.status_code == 404  # Redis lost its data: the game is gone, not faked


async def test_starts_without_redis_and_writes_back_when_it_arrives(
    start_api: type[ApiProcess], bank: QuestionBank
) -> None:
    server = LocalRedis(port=free_port())
    api = start_api({"REDIS_URL": server.url, **FAST_PROBE})
    api.start()
    try:
        async with httpx.AsyncClient(base_url=api.url, timeout=10) as client:
            health = (await client.get("/health")).json()
            assert (health["status"], health["redis"], health["breaker"]) == (
                "degraded",
                "disconnected",
                "open",
            )
            game = await new_game(client)
            assert game["degraded"] is True
            first = await answer(client, answer_body(game, 0, bank))
            server.start()
            health = await wait_for(client, "fallbackSessions", 0)
            assert health["storage"] == "redis-json"
            stored = await results(client, game["sessionId"])
            assert stored["degraded"] is False
            assert stored["answers"][0]["totalPoints"] == first["totalPoints"]
    finally:
        server.stop()
        shutil.rmtree(server.directory, ignore_errors=True)
