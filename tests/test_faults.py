"""Redis faults against real processes: a paused Redis, a killed one, one that starts late.

Each test has its own redis-server (JSON module, AOF) and uvicorn processes with a fast probe.
The timeout budget of one request is pool wait + 2 x REDIS_TIMEOUT_SECONDS (one retry):
0.75 s with the defaults, asserted here as "every request answered within 1 s".
"""

from __future__ import annotations

import asyncio
import re
import shutil
import signal
import socket
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest
import redis

from app.questions import QuestionBank
from tests.conftest import METRICS
from tests.play import Json, answer, answer_body, health_until, new_game, results
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
        await health_until(client, "fallbackSessions", 0)

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
        health = await health_until(a, "breaker", "open")
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
        assert (await health_until(a, "fallbackSessions", 2))["status"] == "degraded"

        if restart == "empty":
            shutil.rmtree(redis_server.directory)
            redis_server.directory.mkdir()
        redis_server.start(appendonly=True)
        health = await health_until(a, "fallbackSessions", 0)
        assert (health["status"], health["breaker"], health["redis"]) == (
            "ok",
            "closed",
            "connected",
        )
        assert metric((await a.get("/metrics", headers=METRICS)).text, "redis_breaker_open") == 0

        # The fallback game continues on the other instance, answers neither lost nor doubled.
        await health_until(b, "breaker", "closed")
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
            health = await health_until(client, "fallbackSessions", 0)
            assert health["storage"] == "redis-json"
            stored = await results(client, game["sessionId"])
            assert stored["degraded"] is False
            assert stored["answers"][0]["totalPoints"] == first["totalPoints"]
    finally:
        server.stop()
        shutil.rmtree(server.directory, ignore_errors=True)


async def test_a_fallback_game_is_never_a_404_on_another_instance_after_recovery(
    redis_server: LocalRedis, start_api: type[ApiProcess], bank: QuestionBank
) -> None:
    """Instance a creates a game in memory while Redis is down. When Redis returns, b (fast
    probe) sees it before a (slow probe) has written the game back: b must say "retry" (503),
    never "no such game" (404), until the game is there."""
    a = start_api({"REDIS_URL": redis_server.url, "BREAKER_PROBE_SECONDS": "4"})
    b = start_api({"REDIS_URL": redis_server.url, "BREAKER_PROBE_SECONDS": "0.1"})
    a.start()
    b.start()
    async with (
        httpx.AsyncClient(base_url=a.url, timeout=10) as on_a,
        httpx.AsyncClient(base_url=b.url, timeout=10) as on_b,
    ):
        redis_server.stop()
        await health_until(on_a, "breaker", "open")
        await health_until(on_b, "breaker", "open")
        game = await new_game(on_a)
        assert game["degraded"] is True
        first = await answer(on_a, answer_body(game, 0, bank, remaining=24.9))
        redis_server.start(appendonly=True)
        await health_until(on_b, "breaker", "closed")
        seen: list[int] = []
        deadline = time.monotonic() + 20
        while not seen or seen[-1] != 200:
            reply = await on_b.get(f"/api/game/results/{game['sessionId']}")
            seen.append(reply.status_code)
            if reply.status_code == 503:
                assert reply.headers["retry-after"]
            assert time.monotonic() < deadline, seen
            await asyncio.sleep(0.05)
        assert 503 in seen  # the window was there: b answered before a wrote the game back
        assert set(seen) == {503, 200}, seen
        assert reply.json()["answers"][0]["totalPoints"] == first["totalPoints"]


async def test_an_unhandled_error_is_logged_once_and_the_connection_kept(
    redis_server: LocalRedis, start_api: type[ApiProcess], tmp_path: Path
) -> None:
    """A document that is not a session (here a plain string where a RedisJSON document should
    be) makes the script fail: a 500 with a request id, one log record with its traceback, and
    the keep-alive connection still serves the next request."""
    log = tmp_path / "service.log"
    api = start_api({"REDIS_URL": redis_server.url}, log=log)
    api.start()
    broken = str(uuid.uuid4())
    client = redis.Redis.from_url(redis_server.url)
    client.set(f"session:{broken}", "not a document")
    client.close()
    with socket.create_connection(("127.0.0.1", api.port), timeout=5) as connection:
        first = request(connection, f"/api/game/results/{broken}")
        second = request(connection, "/health")
    assert first.startswith("HTTP/1.1 500")
    assert '{"error":"Internal error; it has been logged"}' in first
    request_id = header(first, "x-request-id")
    assert second.startswith("HTTP/1.1 200")  # the same connection answered again
    assert "connection: close" not in first.lower()
    api.kill()
    text = log.read_text()
    assert text.count("Traceback") == 1, text
    assert f"unhandled error, request {request_id}: GET /api/game/results/{{session_id}}" in text
    assert broken not in text  # route templates only, never the id


async def test_each_request_is_one_access_line(
    redis_server: LocalRedis, start_api: type[ApiProcess], tmp_path: Path
) -> None:
    """A real process writes one line per request on stderr: level, logger, method, route
    template (never the session id), status, duration and request id, the caller's when it
    sent one; LOG_LEVEL=warning turns the lines off."""
    log = tmp_path / "service.log"
    api = start_api({"REDIS_URL": redis_server.url}, log=log)
    api.start()
    missing = str(uuid.uuid4())
    with socket.create_connection(("127.0.0.1", api.port), timeout=5) as connection:
        not_found = request(connection, f"/api/game/results/{missing}")
        request(connection, "/health", "X-Request-ID: balancer-7")
    lines = access_lines(log, until="balancer-7")
    api.kill()
    own_id = header(not_found, "x-request-id")
    assert re.fullmatch(
        rf"INFO app\.access GET /api/game/results/\{{session_id\}} 404 \d+\.\dms {own_id}",
        lines[-2],
    ), lines
    assert re.fullmatch(r"INFO app\.access GET /health 200 \d+\.\dms balancer-7", lines[-1])

    quiet_log = tmp_path / "quiet.log"
    quiet = start_api({"REDIS_URL": redis_server.url, "LOG_LEVEL": "warning"}, log=quiet_log)
    quiet.start()
    with socket.create_connection(("127.0.0.1", quiet.port), timeout=5) as connection:
        assert request(connection, "/health").startswith("HTTP/1.1 200")
    quiet.kill()
    assert " app.access " not in quiet_log.read_text()


def access_lines(log: Path, until: str) -> list[str]:
    """The access lines in a service's log, once one ends with `until` (a response reaches the
    client just before its line is written)."""
    deadline = time.monotonic() + 5
    while True:
        lines = [line for line in log.read_text().splitlines() if " app.access " in line]
        if (lines and lines[-1].endswith(until)) or time.monotonic() > deadline:
            return lines
        time.sleep(0.05)


def request(connection: socket.socket, path: str, *headers: str) -> str:
    """One HTTP/1.1 request on an open connection, and its whole response."""
    fields = "".join(f"{field}\r\n" for field in ("Host: test", *headers))
    connection.sendall(f"GET {path} HTTP/1.1\r\n{fields}\r\n".encode())
    data = b""
    while b"\r\n\r\n" not in data:
        data += connection.recv(65536)
    head, _, body = data.partition(b"\r\n\r\n")
    length = int(header(head.decode(), "content-length"))
    while len(body) < length:
        body += connection.recv(65536)
    return (head + b"\r\n\r\n" + body).decode()


def header(response: str, name: str) -> str:
    for line in response.split("\r\n")[1:]:
        key, _, value = line.partition(":")
        if key.strip().lower() == name:
            return value.strip()
    raise AssertionError(f"no {name} header in {response!r}")


async def test_a_write_pause_opens_the_breaker_once(
    redis_server: LocalRedis, start_api: type[ApiProcess], bank: QuestionBank
) -> None:
    """CLIENT PAUSE WRITE holds writes but answers PING: the write probe keeps the breaker open
    for the pause instead of closing it on each PING and letting requests wait out the
    timeout again (the soak saw 11 openings for 8 outages)."""
    api = start_api({"REDIS_URL": redis_server.url, "BREAKER_PROBE_SECONDS": "0.2"})
    api.start()
    stop = asyncio.Event()
    async with httpx.AsyncClient(base_url=api.url, timeout=10) as client:
        players = [Player(client, bank) for _ in range(4)]
        tasks = [asyncio.create_task(p.play(stop)) for p in players]
        await asyncio.sleep(0.5)
        pauser = redis.Redis.from_url(redis_server.url)
        pauser.client_pause(3000, all=False)  # WRITE: writes and scripts wait, PING answers
        await asyncio.sleep(4)
        stop.set()
        await asyncio.gather(*tasks)
        pauser.close()
        await health_until(client, "fallbackSessions", 0)
        metrics = (await client.get("/metrics", headers=METRICS)).text
    assert metric(metrics, 'redis_breaker_transitions_total{to="open"}') == 1
    assert metric(metrics, 'redis_breaker_transitions_total{to="closed"}') == 1
    slow = [t for p in players for t in p.latencies if t > BUDGET_SECONDS]
    assert slow == []
