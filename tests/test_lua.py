"""Each Lua script on its own, against a real Redis with the JSON module."""

from __future__ import annotations

import json
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from redis.asyncio import Redis

from app.redis_store import LUA_DIR

TTL_MS = 60_000
Script = Callable[..., Awaitable[Any]]


def script(client: Redis, name: str) -> Script:
    return client.register_script((LUA_DIR / f"{name}.lua").read_text())


def new_key() -> str:
    return f"session:{uuid.uuid4()}"


def doc(*qids: str, answers: list[list[Any]] | None = None) -> str:
    return json.dumps({"q": list(qids), "c": "2026-01-01T00:00:00Z", "a": answers or []})


def answer(qid: str, total: int, wager: int | None = None) -> str:
    return json.dumps([qid, 1, 3.5, total > 0, total, 0, total, False, wager])


async def json_get(client: Redis, key: str, path: str) -> Any:
    return await client.execute_command("JSON.GET", key, path)  # type: ignore[no-untyped-call]


async def create(client: Redis, key: str, document: str) -> None:
    assert await script(client, "create_session")(keys=[key], args=[document, TTL_MS]) == 1


async def submit(client: Redis, key: str, qid: str, wager: int = -1) -> list[Any]:
    final = answer(qid, wager, wager) if wager >= 0 else answer(qid, 0)
    reply: list[Any] = await script(client, "submit_answer")(
        keys=[key], args=[qid, answer(qid, 150), final, wager, TTL_MS]
    )
    return reply


async def stored_answers(client: Redis, key: str) -> list[Any]:
    raw = await json_get(client, key, ".a")
    answers: list[Any] = json.loads(raw)
    return answers


# --- create_session.lua ------------------------------------------------------------------------


async def test_create_sets_document_and_ttl(redis_client: Redis) -> None:
    key = new_key()
    await create(redis_client, key, doc("a", "b"))
    assert json.loads(await json_get(redis_client, key, "."))["q"] == ["a", "b"]
    assert 59_000 < await redis_client.pttl(key) <= TTL_MS


async def test_create_never_overwrites(redis_client: Redis) -> None:
    key = new_key()
    await create(redis_client, key, doc("a"))
    again = await script(redis_client, "create_session")(keys=[key], args=[doc("zzz"), 5])
    assert again == 0
    assert json.loads(await json_get(redis_client, key, "."))["q"] == ["a"]
    assert await redis_client.pttl(key) > 5


# --- read_session.lua --------------------------------------------------------------------------


async def test_read_returns_document_and_slides_ttl(redis_client: Redis) -> None:
    key = new_key()
    await create(redis_client, key, doc("a"))
    await redis_client.pexpire(key, 1000)
    raw = await script(redis_client, "read_session")(keys=[key], args=[TTL_MS])
    assert json.loads(raw)["q"] == ["a"]
    assert await redis_client.pttl(key) > 59_000


async def test_read_missing_key_creates_nothing(redis_client: Redis) -> None:
    key = new_key()
    assert await script(redis_client, "read_session")(keys=[key], args=[TTL_MS]) is None
    assert await redis_client.exists(key) == 0


# --- submit_answer.lua -------------------------------------------------------------------------


async def test_submit_appends_and_slides_ttl(redis_client: Redis) -> None:
    key = new_key()
    await create(redis_client, key, doc("a", "b"))
    await redis_client.pexpire(key, 1000)
    code, stored = await submit(redis_client, key, "a")
    assert code == 0
    assert json.loads(stored) == json.loads(answer("a", 150))
    assert await stored_answers(redis_client, key) == [json.loads(answer("a", 150))]
    assert await redis_client.pttl(key) > 59_000


async def test_submit_duplicate_returns_stored_answer_unchanged(redis_client: Redis) -> None:
    key = new_key()
    await create(redis_client, key, doc("a", "b"))
    _, first = await submit(redis_client, key, "a")
    reply = await script(redis_client, "submit_answer")(
        keys=[key], args=["a", answer("a", 0), answer("a", 0), -1, TTL_MS]
    )
    assert reply[0] == 1
    assert json.loads(reply[1]) == json.loads(first)
    assert len(await stored_answers(redis_client, key)) == 1


async def test_submit_missing_key_is_not_recreated(redis_client: Redis) -> None:
    key = new_key()
    assert await submit(redis_client, key, "a") == [-1]
    assert await redis_client.exists(key) == 0


async def test_submit_question_not_in_session(redis_client: Redis) -> None:
    key = new_key()
    await create(redis_client, key, doc("a", "b"))
    assert await submit(redis_client, key, "zzz") == [-2]
    assert await stored_answers(redis_client, key) == []


async def test_submit_wager_on_regular_question(redis_client: Redis) -> None:
    key = new_key()
    await create(redis_client, key, doc("a", "b"))
    assert await submit(redis_client, key, "a", wager=0) == [-3]
    assert await stored_answers(redis_client, key) == []


@pytest.mark.parametrize(
    ("score", "wager", "accepted"),
    [
        (150, 75, True),
        (150, 76, False),
        (125, 62, True),
        (125, 63, False),
        (0, 0, True),
        (0, 1, False),
    ],
)
async def test_submit_wager_limit_is_half_the_stored_score(
    redis_client: Redis, score: int, wager: int, accepted: bool
) -> None:
    key = new_key()
    await create(redis_client, key, doc("a", "b", answers=[json.loads(answer("a", score))]))
    reply = await submit(redis_client, key, "b", wager=wager)
    if accepted:
        assert reply[0] == 0
        assert json.loads(reply[1])[8] == wager
        assert len(await stored_answers(redis_client, key)) == 2
    else:
        assert reply == [-4, score // 2]
        assert len(await stored_answers(redis_client, key)) == 1


async def test_submit_final_without_wager_stores_final_variant(redis_client: Redis) -> None:
    key = new_key()
    await create(redis_client, key, doc("a", "b"))
    code, stored = await submit(redis_client, key, "b")
    assert code == 0
    assert json.loads(stored) == json.loads(answer("b", 0))
