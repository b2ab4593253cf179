"""What an instance does at shutdown, once no request is in flight (the lifespan's end): the
Redis calls in flight get their replies, the fallback sessions are written back if Redis takes
writes, and whatever cannot be written back is counted in the log. The same against real
processes and a real HAProxy: tests/test_scale.py."""

from __future__ import annotations

import asyncio
import logging
import time
from datetime import UTC, datetime

import pytest
from redis.asyncio import Redis

from app import keys
from app.fallback import CLOSE_WRITE_BACK_SECONDS, FallbackStore
from app.metrics import Metrics
from app.models import StoredSession
from app.questions import QuestionBank
from app.redis_link import RedisLink, connect
from app.settings import Settings
from tests.servers import TEST_SECRET, free_port
from tests.test_store import candidate

pytestmark = pytest.mark.timeout(60)


def settings_for(url: str) -> Settings:
    return Settings(redis_url=url, jwt_secret=TEST_SECRET)


async def test_close_waits_for_the_calls_in_flight(redis_url: str) -> None:
    """Calls made just before close() are sent and answered before the pool closes: without
    the drain they would still be waiting when the event loop ends."""
    link = RedisLink(connect(settings_for(redis_url)), settings_for(redis_url), Metrics())
    assert await link.connect()
    calls = [asyncio.ensure_future(link.command("ping", "PING")) for _ in range(50)]
    await asyncio.sleep(0)  # the calls are made; their batch is not sent yet
    await link.close()
    assert all(call.done() for call in calls)
    assert {call.result() for call in calls} == {True}


async def fallback_store(url: str, bank: QuestionBank) -> tuple[FallbackStore, list[str]]:
    """A store whose breaker is open (as in an outage) holding three games in memory, one of
    them with an answer."""
    store = FallbackStore(
        RedisLink(connect(settings_for(url)), settings_for(url), Metrics()),
        settings_for(url),
        Metrics(),
    )
    await store.start()
    store.link.breaker.trip()
    ids = []
    for _ in range(3):
        session = StoredSession(question_ids=bank.draw(10), created_at=datetime.now(UTC))
        ids.append(await store.create(session))
    assert all(store.is_fallback(sid) for sid in ids)
    first = (await store.load(ids[0])).question_ids[0]
    await store.submit(ids[0], candidate(bank, first))
    return store, ids


async def test_close_writes_the_fallback_sessions_back(
    redis_url: str, bank: QuestionBank, caplog: pytest.LogCaptureFixture
) -> None:
    store, ids = await fallback_store(redis_url, bank)
    with caplog.at_level(logging.WARNING, "app.storage"):
        await store.close()
    assert "shutdown: all 3 fallback sessions written back to Redis" in caplog.text
    client = Redis.from_url(redis_url)
    try:
        for sid in ids:
            assert await client.exists(keys.session(sid)) == 1
            assert await client.pttl(keys.session(sid)) > 0
        answers = await client.execute_command("JSON.GET", keys.session(ids[0]), "$.a")  # type: ignore[no-untyped-call]
        assert answers.count(b"[[") == 1  # the one answer, once
    finally:
        await client.aclose()


async def test_close_counts_the_sessions_it_cannot_write_back(
    bank: QuestionBank, caplog: pytest.LogCaptureFixture
) -> None:
    nowhere = f"redis://127.0.0.1:{free_port()}/0"  # nothing listens there
    store, _ = await fallback_store(nowhere, bank)
    started = time.monotonic()
    with caplog.at_level(logging.WARNING, "app.storage"):
        await store.close()
    assert time.monotonic() - started < CLOSE_WRITE_BACK_SECONDS + 1
    assert (
        "shutdown: 0 of 3 fallback sessions written back; 3 could not be (Redis unusable) and"
        " are lost with this process" in caplog.text
    )
