from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import httpx
import pytest
from asgi_lifespan import LifespanManager
from redis.asyncio import Redis

from app.main import create_app
from app.questions import QuestionBank
from app.redis_store import RedisJsonStore, connect
from app.settings import Settings
from app.store import MemoryStore, SessionStore
from tests.servers import redis_for_tests

BACKENDS = ["redis-json", "memory"]


@pytest.fixture(scope="session")
def redis_url() -> Iterator[str]:
    with redis_for_tests() as url:
        yield url


@pytest.fixture(scope="session")
def bank() -> QuestionBank:
    return QuestionBank.load()


@pytest.fixture
async def redis_client(redis_url: str) -> AsyncIterator[Redis]:
    client = Redis.from_url(redis_url)
    yield client
    await client.aclose()


def make_settings(request: pytest.FixtureRequest, backend: str, **overrides: object) -> Settings:
    if backend == "memory":
        return Settings(use_memory_sessions=True, **overrides)  # type: ignore[arg-type]
    url = request.getfixturevalue("redis_url")
    return Settings(redis_url=url, **overrides)  # type: ignore[arg-type]


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    backend: str = request.param
    return backend


@pytest.fixture
def settings(request: pytest.FixtureRequest, backend: str) -> Settings:
    return make_settings(request, backend)


@pytest.fixture
async def store(settings: Settings) -> AsyncIterator[SessionStore]:
    opened: SessionStore
    if settings.use_memory_sessions:
        opened = MemoryStore(settings.session_ttl_seconds)
    else:
        opened = RedisJsonStore(connect(settings), settings.session_ttl_seconds)
    yield opened
    await opened.close()


@pytest.fixture
async def api(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    async with LifespanManager(create_app(settings)) as manager:
        transport = httpx.ASGITransport(app=manager.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            yield client
