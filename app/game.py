"""The game service: question bank + session store + rules. No HTTP, no Redis here."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from app import rules
from app.errors import SessionNotFound
from app.models import (
    AnswerRequest,
    AnswerResult,
    CreateSessionResponse,
    Results,
    StoredSession,
)
from app.questions import QuestionBank
from app.settings import Settings
from app.store import SessionStore

# Collisions of random UUIDs do not happen in practice; the bound only keeps a bug from looping.
_CREATE_ATTEMPTS = 3


def parse_session_id(raw: str) -> str:
    """The canonical form of a session id; anything that is not a UUID is simply not found."""
    try:
        return str(uuid.UUID(raw))
    except ValueError:
        raise SessionNotFound() from None


class Game:
    def __init__(self, bank: QuestionBank, store: SessionStore, settings: Settings) -> None:
        self.bank = bank
        self.store = store
        self.settings = settings

    @property
    def degraded(self) -> bool:
        return False

    async def create_session(self, question_ids: list[str] | None) -> CreateSessionResponse:
        if question_ids is None:
            question_ids = self.bank.draw(self.settings.questions_per_game)
        else:
            question_ids = self.bank.check_ids(question_ids)
        session = StoredSession(question_ids=question_ids, created_at=datetime.now(UTC))
        for _ in range(_CREATE_ATTEMPTS):
            session_id = str(uuid.uuid4())
            if await self.store.create(session_id, session):
                return CreateSessionResponse(
                    session_id=session_id,
                    questions=[self.bank.public(qid) for qid in question_ids],
                    degraded=self.degraded,
                )
        raise RuntimeError("could not allocate a unique session id")

    async def answer(self, request: AnswerRequest) -> AnswerResult:
        session_id = parse_session_id(request.session_id)
        question = self.bank.get(request.question_id)
        candidate = rules.candidate(
            question,
            request.selected_option,
            request.time_remaining,
            question_seconds=self.settings.question_seconds,
            final_question_seconds=self.settings.final_question_seconds,
            wager=request.wager,
        )
        stored, _duplicate = await self.store.submit(session_id, candidate)
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

    async def results(self, raw_session_id: str) -> Results:
        session_id = parse_session_id(raw_session_id)
        session = await self.store.load(session_id)
        return rules.build_results(session_id, session, self.bank.get, degraded=self.degraded)
