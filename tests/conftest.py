from __future__ import annotations

import random
import shutil
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest
from asgi_lifespan import LifespanManager
from redis.asyncio import Redis

from app.main import create_app
from app.metrics import Metrics
from app.questions import QuestionBank
from app.redis_link import RedisLink, connect
from app.redis_store import RedisStore
from app.settings import Settings
from app.store import MemoryStore, SessionStore
from tests.servers import (
    TEST_METRICS_TOKEN,
    TEST_SECRET,
    ApiProcess,
    LocalRedis,
    redis_for_tests,
)

# Every behavioural test runs on each: RedisJSON documents, JSON strings on a Redis without
# modules, and the memory store.
BACKENDS = ["redis-json", "redis", "memory"]
METRICS = {"authorization": f"Bearer {TEST_METRICS_TOKEN}"}


@pytest.fixture(scope="session")
def redis_url() -> Iterator[str]:
    """A Redis with the JSON module, from the configured provider (tests/servers.py)."""
    with redis_for_tests() as url:
        yield url


@pytest.fixture(scope="session")
def plain_redis_url() -> Iterator[str]:
    """Debian's redis-server without any module, like Valkey or a managed Redis."""
    server = LocalRedis(json_module=False)
    server.start()
    yield server.url
    server.stop()
    shutil.rmtree(server.directory, ignore_errors=True)


@pytest.fixture(scope="session")
def bank() -> QuestionBank:
    return QuestionBank.load()


@pytest.fixture
async def redis_client(redis_url: str) -> AsyncIterator[Redis]:
    client = Redis.from_url(redis_url)
    yield client
    await client.aclose()


def make_settings(request: pytest.FixtureRequest, backend: str, **overrides: Any) -> Settings:
    overrides = {"jwt_secret": TEST_SECRET, "metrics_token": TEST_METRICS_TOKEN, **overrides}
    if backend == "memory":
        return Settings(use_memory_sessions=True, **overrides)
    fixture = "redis_url" if backend == "redis-json" else "plain_redis_url"
    return Settings(redis_url=request.getfixturevalue(fixture), **overrides)


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    backend: str = request.param
    return backend


@pytest.fixture
def settings(request: pytest.FixtureRequest, backend: str) -> Settings:
    return make_settings(request, backend)


async def open_store(settings: Settings, backend: str) -> SessionStore:
    if backend == "memory":
        return MemoryStore(settings.session_ttl_seconds)
    link = RedisLink(connect(settings), settings, Metrics())
    assert await link.connect()
    assert link.storage == ("json" if backend == "redis-json" else "string")
    return RedisStore(link, settings.session_ttl_seconds)


@pytest.fixture
async def store(settings: Settings, backend: str) -> AsyncIterator[SessionStore]:
    opened = await open_store(settings, backend)
    yield opened
    await opened.close()


class PlayedClock:
    """A game clock for tests that answer at once: each reading is 30 s after the last, so a
    game answered in milliseconds looks to the server like one played at a human pace (the
    server checks claimed answer times against its clock, app/rules.py timer_is_plausible)."""

    def __init__(self) -> None:
        self.now = time.time()

    def __call__(self) -> float:
        self.now += 30
        return self.now


def client_address() -> tuple[str, int]:
    """A fresh client address per test app, so per-client limits counted in the shared test
    Redis never carry over from one test to the next."""
    return (f"10.{random.randrange(256)}.{random.randrange(256)}.{random.randrange(256)}", 4000)


@pytest.fixture
async def api(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    async with LifespanManager(create_app(settings, game_clock=PlayedClock())) as manager:
        transport = httpx.ASGITransport(app=manager.app, client=client_address())
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            yield client


@pytest.fixture
def start_api() -> Iterator[type[ApiProcess]]:
    """ApiProcess, each one started killed again after the test."""
    started: list[ApiProcess] = []

    class Tracked(ApiProcess):
        def start(self, timeout: float = 30.0) -> None:
            started.append(self)
            super().start(timeout)

    yield Tracked
    for process in started:
        process.kill()
