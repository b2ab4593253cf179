"""Game sessions in Redis, each change one Lua script: one round trip, TTL reset in the same call.

Two storages behind the same scripts (detected by app/redis_link.py): a RedisJSON document where
the server has the JSON module (redis-stack, Redis 8), else a JSON string changed with cjson
(Valkey, managed Redis without modules, Debian's redis-server). Key names come from app/keys.py.
"""

from __future__ import annotations

from typing import Any

import msgspec

from app import keys, rules
from app.errors import (
    GameError,
    NotYourSession,
    QuestionNotInSession,
    SessionNotFound,
    WagerNotAllowed,
    WagerTooHigh,
)
from app.models import AnswerCandidate, StoredAnswer, StoredSession, StoreStatus
from app.redis_link import RedisLink
from app.rules import Submission
from app.scripts import Created, Restored, Session
from app.store import new_session_id

_encode = msgspec.json.Encoder().encode
_decode_session = msgspec.json.Decoder(StoredSession).decode
_decode_answer = msgspec.json.Decoder(StoredAnswer).decode


def milliseconds(seconds: float) -> int:
    """A TTL for PEXPIRE: at least 1 ms (0 would delete the key)."""
    return max(1, round(seconds * 1000))


class RedisStore:
    def __init__(self, link: RedisLink, ttl_seconds: float) -> None:
        self.link = link
        self._ttl_ms = milliseconds(ttl_seconds)

    @property
    def kind(self) -> str:
        return self.link.kind

    async def create(self, session: StoredSession) -> str:
        document = _encode(session)
        while True:  # a taken random UUID does not happen in practice; never overwrite one
            session_id = new_session_id()
            reply = await self.link.script(
                "create_document", [keys.session(session_id)], document, self._ttl_ms
            )
            if reply == Created.CREATED:
                return session_id

    async def restore(self, session_id: str, session: StoredSession, ttl_seconds: float) -> bool:
        """Write back a fallback session; False if a different session holds its key."""
        reply = await self.link.script(
            "restore_session",
            [keys.session(session_id)],
            _encode(session),
            milliseconds(ttl_seconds),
        )
        return Restored(reply) != Restored.CONFLICT

    async def submit(
        self, session_id: str, answer: AnswerCandidate, user_id: str | None = None
    ) -> Submission:
        reply = await self.link.script(
            "submit_answer",
            [keys.session(session_id)],
            answer.question_id,
            _encode(answer.regular),
            _encode(answer.final),
            _encode(answer.regular_implausible),
            _encode(answer.final_implausible),
            answer.regular.response_time,
            answer.final.response_time,
            -1 if answer.wager is None else answer.wager,
            round((answer.received_at + rules.CLOCK_SLACK_SECONDS) * 1000),
            self._ttl_ms,
            user_id or "",
        )
        return _submission(answer.question_id, reply)

    async def load(self, session_id: str, user_id: str | None = None) -> StoredSession:
        reply = await self.link.script(
            "read_session", [keys.session(session_id)], self._ttl_ms, user_id or ""
        )
        code = Session(reply[0])
        if code != Session.ACCEPTED:
            raise _refusal(code)
        return _decode_session(reply[1])

    async def discard(self, session_id: str) -> None:
        await self.link.command("discard_session", "DEL", keys.session(session_id))

    def is_fallback(self, session_id: str) -> bool:
        return False

    def status(self) -> StoreStatus:
        latency = self.link.last_latency_seconds
        return StoreStatus(
            storage=self.kind,
            redis="connected",
            fallback_mode=False,
            fallback_sessions=0,
            redis_latency_ms=None if latency is None else round(latency * 1000, 3),
        )

    async def close(self) -> None:
        await self.link.close()


def _submission(question_id: str, reply: list[Any]) -> Submission:
    """The one place where submit_answer.lua's replies become domain outcomes."""
    code = Session(reply[0])
    if code == Session.ACCEPTED:
        return Submission(_decode_answer(reply[1]), duplicate=False, completed=reply[2] == 1)
    if code == Session.DUPLICATE:
        return Submission(_decode_answer(reply[1]), duplicate=True, completed=False)
    if code == Session.WAGER_TOO_HIGH:
        raise WagerTooHigh(reply[1])
    raise _refusal(code, question_id)


def _refusal(code: Session, question_id: str = "") -> GameError:
    """The domain error of a session script's refusal code."""
    errors: dict[Session, GameError] = {
        Session.NOT_FOUND: SessionNotFound(),
        Session.NOT_YOURS: NotYourSession(),
        Session.NOT_IN_SESSION: QuestionNotInSession(question_id),
        Session.WAGER_NOT_ALLOWED: WagerNotAllowed(),
    }
    return errors[code]
