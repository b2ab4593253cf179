"""Behavioural tests every session store must pass: RedisJSON, plain Redis and memory."""

from __future__ import annotations

import asyncio
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime

import pytest

from app import keys, rules
from app.errors import QuestionNotInSession, SessionNotFound, WagerNotAllowed, WagerTooHigh
from app.models import AnswerCandidate, StoredSession
from app.questions import QuestionBank
from app.redis_link import connect, detect_storage
from app.redis_store import RedisStore
from app.settings import Settings
from app.store import MemoryStore, SessionStore
from tests.servers import TEST_SECRET

pytestmark = pytest.mark.timeout(60)


async def new_session(
    store: SessionStore, bank: QuestionBank, n: int = 10
) -> tuple[str, StoredSession]:
    session = StoredSession(question_ids=bank.draw(n), created_at=datetime.now(UTC))
    return await store.create(session), session


def candidate(
    bank: QuestionBank,
    qid: str,
    selected: int | None = None,
    remaining: float = 20.0,
    wager: int | None = None,
    received_at: float | None = None,
) -> AnswerCandidate:
    """An answer received an hour after now unless told: the game had time to be played."""
    question = bank.get(qid)
    pick = question.correct_answer if selected is None else selected
    return rules.candidate(
        question,
        pick,
        remaining,
        question_seconds=25,
        final_question_seconds=50,
        wager=wager,
        received_at=time.time() + 3600 if received_at is None else received_at,
    )


async def test_create_and_load_round_trip(store: SessionStore, bank: QuestionBank) -> None:
    sid, session = await new_session(store, bank)
    assert uuid.UUID(sid).version == 4
    loaded = await store.load(sid)
    assert loaded.question_ids == session.question_ids
    assert loaded.created_at == session.created_at
    assert loaded.created_at.tzinfo is not None
    assert loaded.answers == []
    assert not store.is_fallback(sid)


async def test_unknown_session(store: SessionStore, bank: QuestionBank) -> None:
    sid = str(uuid.uuid4())
    with pytest.raises(SessionNotFound):
        await store.load(sid)
    with pytest.raises(SessionNotFound):
        await store.submit(sid, candidate(bank, bank.draw(1)[0]))
    with pytest.raises(SessionNotFound):
        await store.load(sid)  # the refused write created nothing


async def test_answer_once_then_duplicate(store: SessionStore, bank: QuestionBank) -> None:
    sid, session = await new_session(store, bank)
    qid = session.question_ids[0]
    first = await store.submit(sid, candidate(bank, qid))
    wrong = (bank.get(qid).correct_answer + 1) % 4
    again = await store.submit(sid, candidate(bank, qid, wrong, 1.0))
    assert (first.duplicate, again.duplicate) == (False, True)
    assert again.answer == first.answer
    assert (await store.load(sid)).answers == [first.answer]


async def test_refusals_change_nothing(store: SessionStore, bank: QuestionBank) -> None:
    sid, session = await new_session(store, bank, 3)
    outsider = next(q.id for q in bank.all() if q.id not in session.question_ids)
    with pytest.raises(QuestionNotInSession):
        await store.submit(sid, candidate(bank, outsider))
    with pytest.raises(WagerNotAllowed):
        await store.submit(sid, candidate(bank, session.question_ids[0], wager=0))
    with pytest.raises(WagerTooHigh):
        await store.submit(sid, candidate(bank, session.question_ids[2], wager=1))
    assert (await store.load(sid)).answers == []


async def test_wager_checked_against_stored_score(store: SessionStore, bank: QuestionBank) -> None:
    sid, session = await new_session(store, bank, 3)
    first, second, final = session.question_ids
    await store.submit(sid, candidate(bank, first, remaining=20))  # 150
    await store.submit(sid, candidate(bank, second, remaining=10))  # 125
    with pytest.raises(WagerTooHigh) as info:
        await store.submit(sid, candidate(bank, final, wager=138))
    assert info.value.max_wager == 137
    accepted = await store.submit(sid, candidate(bank, final, wager=137))
    assert accepted.answer.total_points == 137
    assert accepted.answer.wager == 137
    assert accepted.completed


async def test_the_clock_bounds_claimed_answer_times(
    store: SessionStore, bank: QuestionBank
) -> None:
    sid, session = await new_session(store, bank, 3)
    start = session.created_at.timestamp()
    first, second, _ = session.question_ids
    kept = await store.submit(sid, candidate(bank, first, remaining=20, received_at=start + 6))
    assert (kept.answer.total_points, kept.answer.flagged) == (150, False)
    early = await store.submit(sid, candidate(bank, second, remaining=20, received_at=start + 7))
    assert (early.answer.speed_bonus, early.answer.total_points, early.answer.flagged) == (
        0,
        100,
        True,
    )
    assert (await store.load(sid)).answers == [kept.answer, early.answer]


async def test_completion_is_reported_once(store: SessionStore, bank: QuestionBank) -> None:
    sid, session = await new_session(store, bank, 3)
    flags = [(await store.submit(sid, candidate(bank, q))).completed for q in session.question_ids]
    assert flags == [False, False, True]
    assert not (await store.submit(sid, candidate(bank, session.question_ids[-1]))).completed


async def test_same_question_100_times_at_once(store: SessionStore, bank: QuestionBank) -> None:
    sid, session = await new_session(store, bank)
    qid = session.question_ids[0]
    replies = await asyncio.gather(
        *(store.submit(sid, candidate(bank, qid, i % 4, i / 5)) for i in range(100))
    )
    answers = {reply.answer for reply in replies}
    assert len(answers) == 1
    assert sum(not reply.duplicate for reply in replies) == 1
    assert (await store.load(sid)).answers == list(answers)


async def test_all_questions_at_once(store: SessionStore, bank: QuestionBank) -> None:
    sid, session = await new_session(store, bank)
    replies = await asyncio.gather(
        *(store.submit(sid, candidate(bank, qid)) for qid in session.question_ids)
    )
    stored = (await store.load(sid)).answers
    assert sorted(a.question_id for a in stored) == sorted(session.question_ids)
    assert sum(a.total_points for a in stored) == sum(r.answer.total_points for r in replies)
    assert sum(a.total_points for a in stored) == 9 * 150
    assert sum(r.completed for r in replies) == 1


@dataclass
class Aging:
    """Time passing for a session, without waiting: a Redis key is given a shorter TTL with
    PEXPIRE (0 expires it at once), a memory store's injected clock is moved on."""

    store: SessionStore
    clock: list[float]  # the memory store's clock; unused for Redis

    async def leave(self, sid: str, seconds: float) -> None:
        """From now on the session has `seconds` left to live (0: it has expired)."""
        if isinstance(self.store, RedisStore):
            await self.store.link.client.pexpire(keys.session(sid), round(seconds * 1000))
        else:
            self.clock[0] += await self.remaining(sid) - seconds

    async def remaining(self, sid: str) -> float:
        if isinstance(self.store, RedisStore):
            return float(await self.store.link.client.pttl(keys.session(sid))) / 1000
        assert isinstance(self.store, MemoryStore)
        return next(ttl for held, _, ttl in self.store.snapshot() if held == sid)


@pytest.fixture
async def aging(store: SessionStore, settings: Settings) -> Aging:
    clock = [0.0]
    if isinstance(store, MemoryStore):
        store = MemoryStore(settings.session_ttl_seconds, clock=lambda: clock[0])
    return Aging(store, clock)


async def test_expired_session_is_gone_and_not_recreated(aging: Aging, bank: QuestionBank) -> None:
    sid, session = await new_session(aging.store, bank)
    await aging.leave(sid, 0)
    with pytest.raises(SessionNotFound):
        await aging.store.submit(sid, candidate(bank, session.question_ids[0]))
    with pytest.raises(SessionNotFound):
        await aging.store.load(sid)


async def test_every_access_slides_the_ttl(
    aging: Aging, bank: QuestionBank, settings: Settings
) -> None:
    sid, session = await new_session(aging.store, bank)
    full = settings.session_ttl_seconds
    for qid in session.question_ids[:4]:  # each time nearly expired, each time a full TTL again
        await aging.leave(sid, 0.5)
        await aging.store.submit(sid, candidate(bank, qid))
        assert full - 1 < await aging.remaining(sid) <= full
    await aging.leave(sid, 0.5)
    assert len((await aging.store.load(sid)).answers) == 4
    assert full - 1 < await aging.remaining(sid) <= full


@pytest.mark.parametrize("backend", ["redis-json", "redis"])
async def test_finished_session_fits_in_4_kib(store: SessionStore, bank: QuestionBank) -> None:
    sid, session = await new_session(store, bank)
    for qid in session.question_ids[:-1]:
        await store.submit(sid, candidate(bank, qid, remaining=12.345))
    await store.submit(sid, candidate(bank, session.question_ids[-1], remaining=3.21, wager=500))
    assert isinstance(store, RedisStore)
    usage = await store.link.client.memory_usage(keys.session(sid))
    assert usage is not None
    assert usage <= 4096


@pytest.mark.parametrize("backend", ["redis-json", "redis"])
async def test_restore_writes_back_once_and_merges(store: SessionStore, bank: QuestionBank) -> None:
    assert isinstance(store, RedisStore)
    session = StoredSession(question_ids=bank.draw(3), created_at=datetime.now(UTC))
    sid = str(uuid.uuid4())
    assert await store.restore(sid, session, 30)
    assert 29 < await store.link.client.ttl(keys.session(sid)) <= 30
    rules.accept_answer(session, candidate(bank, session.question_ids[0]))
    assert await store.restore(sid, session, 30)  # a retry after a lost reply: merged
    assert await store.restore(sid, session, 30)  # and again: nothing doubled
    assert (await store.load(sid)).answers == session.answers
    stranger = StoredSession(question_ids=bank.draw(3), created_at=datetime.now(UTC))
    assert not await store.restore(sid, stranger, 30)  # never over another session
    assert (await store.load(sid)).question_ids == session.question_ids


async def test_storage_is_detected(redis_url: str, plain_redis_url: str) -> None:
    for url, expected in ((redis_url, "json"), (plain_redis_url, "string")):
        client = connect(Settings(redis_url=url, jwt_secret=TEST_SECRET))
        assert await detect_storage(client) == expected
        await client.aclose()


@pytest.mark.parametrize("backend", ["redis-json", "redis"])
async def test_scripts_are_reloaded_after_script_flush(
    store: SessionStore, bank: QuestionBank
) -> None:
    """A restarted or failed-over Redis has no scripts: NOSCRIPT reloads them once."""
    assert isinstance(store, RedisStore)
    sid, session = await new_session(store, bank)
    await store.link.client.script_flush()
    submission = await store.submit(sid, candidate(bank, session.question_ids[0]))
    assert not submission.duplicate
    await store.link.client.script_flush()
    assert len((await store.load(sid)).answers) == 1
