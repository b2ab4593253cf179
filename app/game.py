"""The game service: question bank + session store + rules. No HTTP, no Redis here."""

from __future__ import annotations

import asyncio
import contextlib
import math
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime

import msgspec

from app import __version__, rules
from app.accounts import AccountStore
from app.auth import Auth, Caller, Identity
from app.errors import SessionNotFound, StorageUnavailable, TooManyAttempts
from app.metrics import Metrics
from app.models import (
    AnsweredQuestion,
    AnswerRequest,
    AnswerResult,
    CreateSessionResponse,
    Health,
    Progression,
    Results,
    SessionState,
    StoredSession,
)
from app.questions import QuestionBank
from app.settings import Settings
from app.store import SessionStore


def parse_session_id(raw: str) -> str:
    """The canonical form of a session id; anything that is not a UUID is simply not found."""
    try:
        return str(uuid.UUID(raw))
    except ValueError:
        raise SessionNotFound() from None


class Game:
    """Every game route calls one method here; `clock` (wall-clock seconds) is injected so
    tests control time."""

    def __init__(
        self,
        bank: QuestionBank,
        store: SessionStore,
        auth: Auth,
        accounts: AccountStore,
        settings: Settings,
        metrics: Metrics,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.bank = bank
        self.store = store
        self.auth = auth
        self.accounts = accounts
        self.settings = settings
        self.metrics = metrics
        self._clock = clock
        self._started_at = time.monotonic()

    async def create_session(
        self, question_ids: list[str] | None, caller: Caller
    ) -> CreateSessionResponse:
        player = await self.auth.player(caller)
        practice = question_ids is not None
        if question_ids is None:
            question_ids = self.bank.draw(self.settings.questions_per_game)
        else:
            question_ids = self.bank.check_ids(question_ids)
        session = StoredSession(
            question_ids=question_ids,
            created_at=datetime.fromtimestamp(self._clock(), UTC),
            owner=player.user_id if player else None,
            practice=practice,
        )
        session_id = await self._create_within_limit(session, caller.address)
        degraded = self.store.is_fallback(session_id)
        self.metrics.sessions_created.labels("fallback" if degraded else self.store.kind).inc()
        question_seconds, final_question_seconds = self.time_limits(player)
        return CreateSessionResponse(
            session_id=session_id,
            questions=[self.bank.public(qid) for qid in question_ids],
            degraded=degraded,
            question_seconds=question_seconds,
            final_question_seconds=final_question_seconds,
        )

    async def _create_within_limit(self, session: StoredSession, address: str) -> str:
        """Create the session while counting the client's creates, in the same round trip (the
        two calls share a pipeline). Over the limit, the new session is discarded and the client
        told when to retry: a client cannot fill Redis with sessions, and a player's create
        still costs one round trip."""
        limit = self.settings.creates_per_client
        if limit == 0:
            return await self.store.create(session)
        window_ms = self.settings.rate_limit_window_seconds * 1000
        session_id, (claimed, value) = await asyncio.gather(
            self.store.create(session), self._use(address, limit, window_ms)
        )
        if not claimed:
            with contextlib.suppress(StorageUnavailable):  # else it simply expires, unseen
                await self.store.discard(session_id)
            raise TooManyAttempts(
                "Too many new games from this address", max(1, math.ceil(value / 1000))
            )
        return session_id

    async def _use(self, address: str, limit: int, window_ms: int) -> tuple[bool, int]:
        """Count a create; while Redis cannot count, allow it (the fallback store has its own
        cap)."""
        try:
            return await self.accounts.use(address, "create", limit, window_ms)
        except StorageUnavailable:
            return True, 0

    async def answer(self, request: AnswerRequest, caller: Caller) -> AnswerResult:
        session_id = parse_session_id(request.session_id)
        question = self.bank.get(request.question_id)
        player = await self.auth.player(caller)
        candidate = rules.candidate(
            question,
            request.selected_option,
            request.time_remaining,
            question_seconds=self.settings.question_seconds,
            final_question_seconds=self.settings.final_question_seconds,
            wager=request.wager,
            received_at=self._clock(),
            timer_multiplier=player.timer_multiplier if player else 1.0,
        )
        user_id = player.user_id if player else None
        stored, duplicate, completed = await self.store.submit(session_id, candidate, user_id)
        (self.metrics.answers_duplicated if duplicate else self.metrics.answers_accepted).inc()
        if completed:
            self.metrics.sessions_completed.inc()
        return AnswerResult(
            question_id=stored.question_id,
            correct=stored.correct,
            correct_answer=question.correct_answer,
            explanation=question.explanation,
            base_points=stored.base_points,
            speed_bonus=stored.speed_bonus,
            total_points=stored.total_points,
            flagged=stored.flagged,
            wager=stored.wager,
        )

    async def results(self, raw_session_id: str, caller: Caller) -> Results:
        session_id = parse_session_id(raw_session_id)
        player = await self.auth.player(caller)
        session = await self.store.load(session_id, player.user_id if player else None)
        degraded = self.store.is_fallback(session_id)
        results = rules.build_results(session_id, session, self.bank.get, degraded=degraded)
        if results.complete and session.owner is not None and self._ranked(session):
            results.progression = await self._award(session_id, session.owner, results)
        return results

    def _ranked(self, session: StoredSession) -> bool:
        """Only games whose questions the server drew, of the standard length, earn progression
        and count for the best score: a player who chooses the questions (a practice game)
        could otherwise farm XP with one-question games or inflate the best score."""
        return (
            not session.practice and len(session.question_ids) == self.settings.questions_per_game
        )

    async def _award(self, session_id: str, owner: str, results: Results) -> Progression | None:
        """The finished game's progression, added to the owner's totals on the first call only
        (award_progression.lua keeps a ledger per player). While Redis is unreachable a
        fallback game's results come without it; the next call once Redis is back awards it."""
        try:
            return await self.accounts.award(
                owner,
                session_id,
                rules.progression(results.total_correct),
                score=results.total_score,
                correct=results.total_correct,
                questions=results.total_questions,
                now_ms=int(self._clock() * 1000),
            )
        except StorageUnavailable:
            if results.degraded:
                return None
            raise

    async def state(self, raw_session_id: str, caller: Caller) -> SessionState:
        """A game as its player left it, so a client can resume it after a reload.

        The same read as results (one script call: owner-checked, TTL slid), but it awards
        nothing, and each answer comes with its explanation: answered questions only.
        """
        session_id = parse_session_id(raw_session_id)
        player = await self.auth.player(caller)
        session = await self.store.load(session_id, player.user_id if player else None)
        answers = answered_questions(session, self.bank)
        score = sum(answer.total_points for answer in answers)
        question_seconds, final_question_seconds = self.time_limits(player)
        return SessionState(
            session_id=session_id,
            questions=[self.bank.public(qid) for qid in session.question_ids],
            answers=answers,
            total_score=score,
            max_wager=rules.max_wager(score),
            complete=len(answers) == len(session.question_ids),
            degraded=self.store.is_fallback(session_id),
            question_seconds=question_seconds,
            final_question_seconds=final_question_seconds,
        )

    def time_limits(self, player: Identity | None) -> tuple[float, float]:
        """(per question, final question) in seconds, stretched by the player's multiplier as
        the answer route stretches them (rules.candidate)."""
        multiplier = player.timer_multiplier if player else 1.0
        return (
            self.settings.question_seconds * multiplier,
            self.settings.final_question_seconds * multiplier,
        )

    def health(self) -> Health:
        """What /health reports: state only, never a wait on Redis."""
        status = self.store.status()
        degraded = status.fallback_mode or status.fallback_sessions > 0
        return Health(
            **msgspec.structs.asdict(status),
            status="degraded" if degraded else "ok",
            uptime_seconds=round(time.monotonic() - self._started_at, 1),
            version=__version__,
        )


def answered_questions(session: StoredSession, bank: QuestionBank) -> list[AnsweredQuestion]:
    """The stored answers in question order, each as the answer result its player saw."""
    by_id = {answer.question_id: answer for answer in session.answers}
    views = []
    for index, question_id in enumerate(session.question_ids):
        stored = by_id.get(question_id)
        if stored is None:
            continue
        question = bank.get(question_id)
        views.append(
            AnsweredQuestion(
                question_id=question_id,
                question_index=index,
                selected_option=stored.selected_option,
                correct=stored.correct,
                correct_answer=question.correct_answer,
                explanation=question.explanation,
                base_points=stored.base_points,
                speed_bonus=stored.speed_bonus,
                total_points=stored.total_points,
                flagged=stored.flagged,
                wager=stored.wager,
            )
        )
    return views
