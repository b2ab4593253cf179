"""Each Lua script on its own, on both storages: RedisJSON documents (a server with the JSON
module) and JSON strings (a server without modules). Scripts come from the service's own loader
(prelude + script), as the service runs them."""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import pytest
from redis.asyncio import Redis

from app import scripts

TTL_MS = 60_000
DAY_MS = 24 * 3600 * 1000
FAR = 4_000_000_000_000  # a deadline in the year 2096: every claimed time is plausible


@dataclass
class Lua:
    client: Redis
    storage: str

    async def run(self, name: str, key: str | list[str], *args: Any) -> Any:
        keys = [key] if isinstance(key, str) else key
        source = scripts.load(name).source
        return await self.client.eval(source, len(keys), *keys, *args, self.storage)

    async def document(self, key: str) -> Any:
        if self.storage == "json":
            raw = await self.client.execute_command("JSON.GET", key, ".")  # type: ignore[no-untyped-call]
        else:
            raw = await self.client.get(key)
        return None if raw is None else json.loads(raw)

    async def create(self, key: str, document: str) -> None:
        assert await self.run("create_document", key, document, TTL_MS) == 1

    async def submit(
        self, key: str, qid: str, wager: int = -1, user: str = "", deadline_ms: int = FAR
    ) -> list[Any]:
        final = answer(qid, wager, wager) if wager >= 0 else answer(qid, 0)
        return await self.submit_exactly(
            key, qid, answer(qid, 150), final, wager, user, deadline_ms
        )

    async def submit_exactly(
        self,
        key: str,
        qid: str,
        regular: str,
        final: str,
        wager: int = -1,
        user: str = "",
        deadline_ms: int = FAR,
    ) -> list[Any]:
        """submit_answer.lua with its arguments in order; the implausible outcomes are marked
        by a total of -1, and each outcome claims 3.5 s (see `answer`)."""
        implausible = [
            json.dumps([*json.loads(a)[:6], -1, True, json.loads(a)[8]]) for a in (regular, final)
        ]
        reply: list[Any] = await self.run(
            "submit_answer",
            key,
            qid,
            regular,
            final,
            *implausible,
            3.5,
            3.5,
            wager,
            deadline_ms,
            TTL_MS,
            user,
        )
        return reply


@pytest.fixture(params=["json", "string"])
async def lua(
    request: pytest.FixtureRequest, redis_url: str, plain_redis_url: str
) -> AsyncIterator[Lua]:
    url = redis_url if request.param == "json" else plain_redis_url
    client = Redis.from_url(url)
    yield Lua(client, request.param)
    await client.aclose()


def new_key() -> str:
    return f"session:{uuid.uuid4()}"


def doc(
    *qids: str,
    answers: list[list[Any]] | None = None,
    created: str = "2026-01-01T00:00:00Z",
    owner: str | None = None,
) -> str:
    return json.dumps({"q": list(qids), "c": created, "a": answers or [], "u": owner})


def answer(qid: str, total: int, wager: int | None = None) -> str:
    return json.dumps([qid, 1, 3.5, total > 0, total, 0, total, False, wager])


# --- create_session.lua ------------------------------------------------------------------------


async def test_create_sets_document_and_ttl(lua: Lua) -> None:
    key = new_key()
    await lua.create(key, doc("a", "b"))
    assert (await lua.document(key))["q"] == ["a", "b"]
    assert 59_000 < await lua.client.pttl(key) <= TTL_MS


async def test_create_never_overwrites(lua: Lua) -> None:
    key = new_key()
    await lua.create(key, doc("a"))
    assert await lua.run("create_document", key, doc("zzz"), 5) == 0
    assert (await lua.document(key))["q"] == ["a"]
    assert await lua.client.pttl(key) > 5


async def test_create_without_ttl_keeps_none(lua: Lua) -> None:
    key = f"user:{{{uuid.uuid4().hex}}}"
    assert await lua.run("create_document", key, json.dumps(USER), 0) == 1
    assert await lua.run("create_document", key, json.dumps({**USER, "name": "Eve"}), 0) == 0
    assert (await lua.document(key))["name"] == "Ada"
    assert await lua.client.pttl(key) == -1


# --- read_session.lua --------------------------------------------------------------------------


async def test_read_returns_document_and_slides_ttl(lua: Lua) -> None:
    key = new_key()
    await lua.create(key, doc("a"))
    await lua.client.pexpire(key, 1000)
    code, raw = await lua.run("read_session", key, TTL_MS, "")
    assert code == 0
    assert json.loads(raw)["q"] == ["a"]
    assert await lua.client.pttl(key) > 59_000


async def test_read_missing_key_creates_nothing(lua: Lua) -> None:
    key = new_key()
    assert await lua.run("read_session", key, TTL_MS, "") == [-1]
    assert await lua.client.exists(key) == 0


# --- submit_answer.lua -------------------------------------------------------------------------


async def test_submit_appends_and_slides_ttl(lua: Lua) -> None:
    key = new_key()
    await lua.create(key, doc("a", "b"))
    await lua.client.pexpire(key, 1000)
    code, stored, completed = await lua.submit(key, "a")
    assert (code, completed) == (0, 0)
    assert json.loads(stored) == json.loads(answer("a", 150))
    assert (await lua.document(key))["a"] == [json.loads(answer("a", 150))]
    assert await lua.client.pttl(key) > 59_000


async def test_submit_reports_completion(lua: Lua) -> None:
    key = new_key()
    await lua.create(key, doc("a", "b"))
    assert (await lua.submit(key, "b"))[2] == 0
    assert (await lua.submit(key, "a"))[2] == 1


async def test_submit_duplicate_returns_stored_answer_unchanged(lua: Lua) -> None:
    key = new_key()
    await lua.create(key, doc("a", "b"))
    _, first, _ = await lua.submit(key, "a")
    reply = await lua.submit_exactly(key, "a", answer("a", 0), answer("a", 0))
    assert reply[0] == 1
    assert json.loads(reply[1]) == json.loads(first)
    assert len((await lua.document(key))["a"]) == 1


async def test_submit_missing_key_is_not_recreated(lua: Lua) -> None:
    key = new_key()
    assert await lua.submit(key, "a") == [-1]
    assert await lua.client.exists(key) == 0


async def test_submit_question_not_in_session(lua: Lua) -> None:
    key = new_key()
    await lua.create(key, doc("a", "b"))
    assert await lua.submit(key, "zzz") == [-2]
    assert (await lua.document(key))["a"] == []


async def test_submit_wager_on_regular_question(lua: Lua) -> None:
    key = new_key()
    await lua.create(key, doc("a", "b"))
    assert await lua.submit(key, "a", wager=0) == [-3]
    assert (await lua.document(key))["a"] == []


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
    lua: Lua, score: int, wager: int, accepted: bool
) -> None:
    key = new_key()
    await lua.create(key, doc("a", "b", answers=[json.loads(answer("a", score))]))
    reply = await lua.submit(key, "b", wager=wager)
    if accepted:
        assert reply[0] == 0
        assert json.loads(reply[1])[8] == wager
        assert len((await lua.document(key))["a"]) == 2
    else:
        assert reply == [-4, score // 2]
        assert len((await lua.document(key))["a"]) == 1


async def test_submit_final_without_wager_stores_final_variant(lua: Lua) -> None:
    key = new_key()
    await lua.create(key, doc("a", "b"))
    code, stored, _ = await lua.submit(key, "b")
    assert code == 0
    assert json.loads(stored) == json.loads(answer("b", 0))


async def test_submit_checks_claimed_times_against_the_clock(lua: Lua) -> None:
    key = new_key()
    created = "2026-01-01T00:00:00Z"  # 1767225600000 ms since the epoch
    await lua.create(key, doc("a", "b", "c", created=created))
    # 3.5 s claimed by 1767225603500 + 1 ms: plausible; then 7 s claimed by 6.9 s: not.
    assert (await lua.submit(key, "a", deadline_ms=1767225603501))[0] == 0
    code, stored, _ = await lua.submit(key, "b", deadline_ms=1767225606900)
    assert code == 0
    assert json.loads(stored)[6:8] == [-1, True]  # the implausible outcome was chosen
    assert [a[6] for a in (await lua.document(key))["a"]] == [150, -1]


# --- restore_session.lua -----------------------------------------------------------------------


async def test_restore_writes_missing_session_with_given_ttl(lua: Lua) -> None:
    key = new_key()
    assert await lua.run("restore_session", key, doc("a", "b"), 30_000) == 1
    assert (await lua.document(key))["q"] == ["a", "b"]
    assert 29_000 < await lua.client.pttl(key) <= 30_000


async def test_restore_appends_only_missing_answers(lua: Lua) -> None:
    key = new_key()
    await lua.create(key, doc("a", "b", "c", answers=[json.loads(answer("a", 150))]))
    mine = doc("a", "b", "c", answers=[json.loads(answer(q, 100)) for q in ("a", "b")])
    assert await lua.run("restore_session", key, mine, 30_000) == 2
    assert await lua.run("restore_session", key, mine, 30_000) == 2
    stored = (await lua.document(key))["a"]
    assert stored == [json.loads(answer("a", 150)), json.loads(answer("b", 100))]


async def test_restore_never_writes_over_another_session(lua: Lua) -> None:
    key = new_key()
    await lua.create(key, doc("a", "b"))
    other = doc("a", "b", created="2026-02-02T00:00:00Z", answers=[json.loads(answer("a", 1))])
    assert await lua.run("restore_session", key, other, 30_000) == 0
    assert (await lua.document(key))["a"] == []


# --- ownership ---------------------------------------------------------------------------------


async def test_owned_session_refuses_strangers_without_touching_it(lua: Lua) -> None:
    key = new_key()
    await lua.create(key, doc("a", "b", owner="alice"))
    await lua.client.pexpire(key, 5000)
    assert await lua.submit(key, "a", user="bob") == [-5]
    assert await lua.submit(key, "a") == [-5]
    assert await lua.run("read_session", key, TTL_MS, "bob") == [-5]
    assert await lua.client.pttl(key) <= 5000
    assert (await lua.document(key))["a"] == []
    assert (await lua.submit(key, "a", user="alice"))[0] == 0
    assert json.loads((await lua.run("read_session", key, TTL_MS, "alice"))[1])["u"] == "alice"


async def test_anonymous_session_is_open_to_anyone(lua: Lua) -> None:
    key = new_key()
    await lua.create(key, doc("a", "b"))
    assert (await lua.submit(key, "a", user="bob"))[0] == 0
    assert (await lua.submit(key, "b", user=""))[0] == 0


# --- account scripts ---------------------------------------------------------------------------

USER = {
    "id": "u1",
    "email": "a@b.org",
    "name": "Ada",
    "passwordHash": "$argon2id$x/y",
    "createdAt": "2026-01-01T00:00:00Z",
    "totalXp": 0,
    "totalGems": 0,
    "gamesPlayed": 0,
    "bestScore": 0,
    "totalCorrect": 0,
    "totalQuestions": 0,
    "timerMultiplier": 1.0,
}


async def put_user(lua: Lua, key: str) -> None:
    if lua.storage == "json":
        await lua.client.execute_command("JSON.SET", key, ".", json.dumps(USER))  # type: ignore[no-untyped-call]
    else:
        await lua.client.set(key, json.dumps(USER))


async def test_award_ledger_makes_retries_free(lua: Lua) -> None:
    tag = uuid.uuid4().hex
    keys = [f"user:{{{tag}}}", f"awards:{{{tag}}}", f"award-times:{{{tag}}}"]
    await put_user(lua, keys[0])
    now, keep = 1_800_000_000_000, 30 * DAY_MS
    first = await lua.run("award_progression", keys, "s1", 57, 17, 900, 7, 10, now, keep)
    again = await lua.run("award_progression", keys, "s1", 57, 17, 900, 7, 10, now, keep)
    other = await lua.run("award_progression", keys, "s2", 52, 12, 300, 2, 10, now, keep)
    assert (first, again, other) == ([1, 57, 17], [0, 57, 17], [1, 52, 12])
    user = await lua.document(keys[0])
    assert (user["totalXp"], user["totalGems"], user["gamesPlayed"]) == (109, 29, 2)
    assert (user["bestScore"], user["totalCorrect"], user["totalQuestions"]) == (900, 9, 20)
    assert user["passwordHash"] == USER["passwordHash"]
    missing = [f"{k.split(':')[0]}:{{{uuid.uuid4().hex}}}" for k in keys]
    assert await lua.run("award_progression", missing, "s1", 1, 1, 1, 1, 1, now, keep) == [-1]


async def test_award_ledger_forgets_games_unread_for_the_retention(lua: Lua) -> None:
    tag = uuid.uuid4().hex
    keys = [f"user:{{{tag}}}", f"awards:{{{tag}}}", f"award-times:{{{tag}}}"]
    await put_user(lua, keys[0])
    day0, keep = 1_800_000_000_000, 30 * DAY_MS
    await lua.run("award_progression", keys, "old", 51, 11, 100, 1, 10, day0, keep)
    await lua.run("award_progression", keys, "read", 51, 11, 100, 1, 10, day0, keep)
    # "read" is read again on day 20: kept; "old" is not: forgotten after 30 days.
    await lua.run("award_progression", keys, "read", 51, 11, 100, 1, 10, day0 + 20 * DAY_MS, keep)
    await lua.run("award_progression", keys, "new", 51, 11, 100, 1, 10, day0 + 31 * DAY_MS, keep)
    assert sorted(await lua.client.hkeys(keys[1])) == [b"new", b"read"]
    assert sorted(await lua.client.zrange(keys[2], 0, -1)) == [b"new", b"read"]
    assert (await lua.document(keys[0]))["gamesPlayed"] == 3


async def test_claim_login_counts_before_the_check(lua: Lua) -> None:
    key = f"login:{{{uuid.uuid4().hex}@example.org}}"
    replies = [await lua.run("claim_login", key, "1.1.1.1", 3, 4, 60_000) for _ in range(4)]
    assert replies[:3] == [[1, 1], [1, 2], [1, 3]]
    assert replies[3][0] == 0
    assert 59_000 < replies[3][1] <= 60_000
    assert await lua.run("claim_login", key, "2.2.2.2", 3, 4, 60_000) == [1, 1]
    assert (await lua.run("claim_login", key, "3.3.3.3", 3, 4, 60_000))[0] == 0  # per email
    assert await lua.client.hgetall(key) == {b"all": b"4", b"c:1.1.1.1": b"3", b"c:2.2.2.2": b"1"}
    assert 59_000 < await lua.client.pttl(key) <= 60_000


async def test_rate_limit_claims_refuses_and_gives_back(lua: Lua) -> None:
    key = f"rate:{{{uuid.uuid4().hex}}}:create"
    assert [await lua.run("rate_limit", key, 2, 60_000, 1) for _ in range(2)] == [[1, 1], [1, 2]]
    refused = await lua.run("rate_limit", key, 2, 60_000, 1)
    assert refused[0] == 0
    assert 59_000 < refused[1] <= 60_000
    assert await lua.run("rate_limit", key, 2, 60_000, -1) == [1, 1]
    assert await lua.run("rate_limit", key, 2, 60_000, 1) == [1, 2]
    assert await lua.client.get(key) == b"2"
    empty = f"rate:{{{uuid.uuid4().hex}}}:login"
    assert await lua.run("rate_limit", empty, 2, 60_000, -1) == [1, 0]  # nothing to give back
    assert await lua.client.exists(empty) == 0


async def test_update_settings(lua: Lua) -> None:
    key = f"user:{{{uuid.uuid4().hex}}}"
    assert await lua.run("update_settings", key, 1.5) == [-1]
    assert await lua.client.exists(key) == 0
    await put_user(lua, key)
    code, raw = await lua.run("update_settings", key, 2.0)
    assert code == 0
    updated = json.loads(raw)
    assert updated["timerMultiplier"] == 2.0
    assert (await lua.document(key))["timerMultiplier"] == 2.0


async def test_rotate_refresh(lua: Lua) -> None:
    key = f"refresh:{uuid.uuid4().hex}"
    now, grace = 1_800_000_000_000, 5000
    rotate = ("rotate_refresh", key)
    assert await lua.run(*rotate, "a", "b", 60_000, now, grace) == [0]  # no live family
    await lua.client.set(key, "a")  # as login starts a family
    assert await lua.run(*rotate, "a", "b", 60_000, now, grace) == [1]
    assert await lua.client.get(key) == f"b a {now + grace}".encode()
    assert 59_000 < await lua.client.pttl(key) <= 60_000
    # "a" again within the grace window: the live token "b" is handed out, nothing changes.
    assert await lua.run(*rotate, "a", "c", 60_000, now + grace, grace) == [2, b"b"]
    assert await lua.client.get(key) == f"b a {now + grace}".encode()
    # "a" again after it: reuse, the family is revoked.
    assert await lua.run(*rotate, "a", "c", 60_000, now + grace + 1, grace) == [-1]
    assert await lua.client.exists(key) == 0


async def test_rotate_refresh_reuse_of_an_older_token(lua: Lua) -> None:
    key = f"refresh:{uuid.uuid4().hex}"
    now, grace = 1_800_000_000_000, 5000
    await lua.client.set(key, "a")
    assert await lua.run("rotate_refresh", key, "a", "b", 60_000, now, grace) == [1]
    assert await lua.run("rotate_refresh", key, "b", "c", 60_000, now, grace) == [1]
    assert await lua.run("rotate_refresh", key, "a", "d", 60_000, now, grace) == [-1]
    assert await lua.client.exists(key) == 0
