"""What each Redis error means to players, against a real Redis put into that state.

A read-only replica, a failed save (MISCONF), a script running too long (BUSY) and a Redis
loading its data (LOADING) mean "Redis cannot serve now": new games go to memory (degraded),
games in Redis get 503 with Retry-After, never a 500; the breaker counts them and the write
probe keeps it open until Redis takes writes again; then fallback games are written back and
the old game goes on. Out of memory means "full", not down: Redis refuses new games (they go
to memory) but games in progress go on, and the breaker stays closed. NOSCRIPT is answered by
loading the script again (tests/test_store.py).
"""

from __future__ import annotations

import asyncio
import shutil
import signal
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass, field

import httpx
import pytest
import redis.asyncio
from asgi_lifespan import LifespanManager

from app.main import create_app
from app.questions import QuestionBank
from app.settings import Settings
from tests.conftest import METRICS, PlayedClock, client_address
from tests.play import answer_body, health_until
from tests.servers import TEST_METRICS_TOKEN, TEST_SECRET, LocalRedis, free_port

pytestmark = [pytest.mark.processes, pytest.mark.timeout(90)]
OUTAGES = ["readonly", "misconf", "busy", "loading"]


@dataclass
class State:
    """Puts a Redis into a state and out of it again."""

    server: LocalRedis
    client: redis.asyncio.Redis
    tasks: list[asyncio.Task[object]] = field(default_factory=list)
    others: list[LocalRedis] = field(default_factory=list)


async def enter_oom(state: State) -> None:
    await state.client.config_set("maxmemory", 1)


async def leave_oom(state: State) -> None:
    await state.client.config_set("maxmemory", 0)


async def enter_readonly(state: State) -> None:
    """The Redis the service uses becomes a replica (as after a failover), of a primary that
    holds the same data: a copy made first by replicating from it."""
    primary = LocalRedis()
    primary.start()
    state.others.append(primary)
    copy = redis.asyncio.Redis.from_url(primary.url)
    await copy.replicaof("127.0.0.1", state.server.port)
    await wait_until(lambda: synced(copy))
    await copy.replicaof("NO", "ONE")
    await copy.aclose()
    await state.client.replicaof("127.0.0.1", primary.port)
    await wait_until(lambda: synced(state.client))


async def synced(client: redis.asyncio.Redis) -> bool:
    info = await client.info("replication")
    return bool(info.get("master_link_status") == "up")


async def leave_readonly(state: State) -> None:
    await state.client.replicaof("NO", "ONE")


async def enter_misconf(state: State) -> None:
    """A save that failed (its directory is gone) with save points configured: Redis refuses
    writes until a save succeeds or saving is turned off."""
    shutil.rmtree(state.server.directory)
    await state.client.config_set("save", "3600 1")
    await state.client.bgsave()
    await wait_until(lambda: bgsave_failed(state.client))


async def bgsave_failed(client: redis.asyncio.Redis) -> bool:
    info = await client.info("persistence")
    return bool(info["rdb_last_bgsave_status"] == "err" and not info["rdb_bgsave_in_progress"])


async def leave_misconf(state: State) -> None:
    await state.client.config_set("save", "")


async def enter_busy(state: State) -> None:
    """A script that runs on and on: after busy-reply-threshold every other call gets BUSY."""
    await state.client.config_set("busy-reply-threshold", 100)
    looping = redis.asyncio.Redis.from_url(state.server.url)
    spin = looping.eval("local n = 0 while true do n = n + 1 end", 0)
    state.tasks.append(asyncio.ensure_future(spin))
    await asyncio.sleep(0.3)


async def leave_busy(state: State) -> None:
    await state.client.script_kill()
    for task in state.tasks:
        with pytest.raises(redis.exceptions.ResponseError):
            await task


async def enter_loading(state: State) -> None:
    """Redis restarted with enough data to take seconds to load it (key-load-delay slows each
    key down): LOADING answers until it is done."""
    async with state.client.pipeline(transaction=False) as pipe:
        for i in range(20_000):
            pipe.set(f"filler:{i}", i)
        await pipe.execute()
    await state.client.bgrewriteaof()
    await wait_until(lambda: rewrite_done(state.client))
    state.server.stop()
    state.server.start(True, "--key-load-delay", "200", wait=False)


async def rewrite_done(client: redis.asyncio.Redis) -> bool:
    info = await client.info("persistence")
    return not info["aof_rewrite_in_progress"] and not info["aof_rewrite_scheduled"]


async def leave_loading(state: State) -> None:
    await wait_until(lambda: loaded(state.client), seconds=30)


async def loaded(client: redis.asyncio.Redis) -> bool:
    try:
        return bool(await client.ping())
    except (
        redis.exceptions.BusyLoadingError,
        redis.exceptions.ConnectionError,
        redis.exceptions.TimeoutError,  # still loading, on a busy machine
    ):
        return False


async def wait_until(done: Callable[[], Awaitable[bool]], seconds: float = 15) -> None:
    deadline = time.monotonic() + seconds
    while not await done():
        assert time.monotonic() < deadline, "Redis did not reach the state in time"
        await asyncio.sleep(0.05)


STATES = {
    "readonly": (enter_readonly, leave_readonly),
    "misconf": (enter_misconf, leave_misconf),
    "busy": (enter_busy, leave_busy),
    "loading": (enter_loading, leave_loading),
}


@pytest.fixture
def server() -> Iterator[LocalRedis]:
    started = LocalRedis(port=free_port())
    started.start(True)  # AOF: a restart (LOADING) keeps the games
    yield started
    if started.process is not None:
        started.signal(signal.SIGCONT)
    started.stop()
    shutil.rmtree(started.directory, ignore_errors=True)


@pytest.fixture
async def api(server: LocalRedis) -> AsyncIterator[httpx.AsyncClient]:
    settings = Settings(
        redis_url=server.url,
        jwt_secret=TEST_SECRET,
        metrics_token=TEST_METRICS_TOKEN,
        breaker_probe_seconds=0.2,
    )
    async with LifespanManager(create_app(settings, game_clock=PlayedClock())) as manager:
        transport = httpx.ASGITransport(app=manager.app, client=client_address())
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            yield client


@pytest.mark.parametrize("name", list(STATES))
async def test_redis_that_cannot_serve_is_an_outage_then_recovers(
    name: str, server: LocalRedis, api: httpx.AsyncClient, bank: QuestionBank
) -> None:
    enter, leave = STATES[name]
    before = (await api.post("/api/game/session")).json()
    assert before["degraded"] is False
    first = await api.post("/api/game/answer", json=answer_body(before, 0, bank))
    assert first.status_code == 200

    state = State(server, redis.asyncio.Redis.from_url(server.url))
    try:
        await enter(state)
        statuses = []
        for i in range(1, 4):  # a Redis game: 503 with Retry-After each time, never a 500
            refused = await api.post("/api/game/answer", json=answer_body(before, i, bank))
            statuses.append(refused.status_code)
            assert refused.status_code == 503, refused.text
            assert refused.headers["retry-after"]
        read = await api.get(f"/api/game/results/{before['sessionId']}")
        assert read.status_code in {200, 503}  # a read may still work; never a 500
        during = await api.post("/api/game/session")
        assert during.status_code == 201, during.text
        assert during.json()["degraded"] is True
        await health_until(api, "breaker", "open")
        metrics = (await api.get("/metrics", headers=METRICS)).text
        assert "redis_errors_total" in metrics
        assert "redis_connected 0.0" in metrics
        await asyncio.sleep(0.5)  # the probe keeps failing while the state lasts
        assert (await api.get("/health")).json()["breaker"] == "open"
        played = await api.post("/api/game/answer", json=answer_body(during.json(), 0, bank))
        assert played.status_code == 200
        await leave(state)
    finally:
        for other in state.others:
            other.stop()
        await state.client.aclose()

    health = await health_until(api, "fallbackSessions", 0)
    assert (health["breaker"], health["redis"]) == ("closed", "connected")
    moved = (await api.get(f"/api/game/results/{during.json()['sessionId']}")).json()
    assert (moved["degraded"], len(moved["answers"])) == (False, 1)
    later = await api.post("/api/game/answer", json=answer_body(before, 1, bank))
    assert later.status_code == 200
    assert (
        first.json()
        == (await api.post("/api/game/answer", json=answer_body(before, 0, bank))).json()
    )


async def test_redis_out_of_memory_is_full_not_down(
    server: LocalRedis, api: httpx.AsyncClient, bank: QuestionBank
) -> None:
    before = (await api.post("/api/game/session")).json()
    state = State(server, redis.asyncio.Redis.from_url(server.url))
    try:
        await enter_oom(state)
        for _ in range(5):  # more than BREAKER_FAILURES: each a 201 in memory, never a 500
            during = await api.post("/api/game/session")
            assert during.status_code == 201, during.text
            assert during.json()["degraded"] is True
        for i in range(3):  # the game in progress goes on
            kept = await api.post("/api/game/answer", json=answer_body(before, i, bank))
            assert kept.status_code == 200, kept.text
        assert (await api.get(f"/api/game/results/{before['sessionId']}")).status_code == 200
        health = (await api.get("/health")).json()
        assert (health["breaker"], health["status"], health["fallbackSessions"]) == (
            "closed",
            "degraded",
            5,
        )
        metrics = (await api.get("/metrics", headers=METRICS)).text
        assert 'redis_errors_total{operation="create_document"} 5.0' in metrics
        await leave_oom(state)
    finally:
        await state.client.aclose()
    await health_until(api, "fallbackSessions", 0)
    moved = (await api.get(f"/api/game/results/{during.json()['sessionId']}")).json()
    assert moved["degraded"] is False
    assert (await api.post("/api/game/session")).json()["degraded"] is False
