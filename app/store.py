"""The session store interface and its in-memory implementation.

Every store gives the same guarantees: every read or write slides the TTL, a write never
re-creates an expired session, and `submit` applies `rules.accept_answer` atomically.
"""

from __future__ import annotations

import time
import uuid
from collections import OrderedDict
from collections.abc import Callable
from typing import Protocol

import msgspec

from app.errors import SessionNotFound
from app.models import AnswerCandidate, StoredSession, StoreStatus
from app.rules import Submission, accept_answer, check_owner

_encode = msgspec.json.Encoder().encode
_decode = msgspec.json.Decoder(StoredSession).decode


FALLBACK_MARK = "ff"


def new_session_id(fallback: bool = False) -> str:
    """A random UUID v4. Ids of sessions created in an instance's memory while Redis was down
    begin with FALLBACK_MARK, and no other id does, so any instance can tell such a game from
    one that never existed while it is being written back (app/fallback.py)."""
    session_id = str(uuid.uuid4())
    if fallback:
        return FALLBACK_MARK + session_id[2:]
    while session_id.startswith(FALLBACK_MARK):
        session_id = str(uuid.uuid4())
    return session_id


def is_fallback_id(session_id: str) -> bool:
    return session_id.startswith(FALLBACK_MARK)


class SessionStore(Protocol):
    @property
    def kind(self) -> str:
        """ "redis-json", "redis" or "memory", as /health reports it."""

    async def create(self, session: StoredSession) -> str:
        """Store a new session under a fresh random id and return the id."""

    async def submit(
        self, session_id: str, answer: AnswerCandidate, user_id: str | None = None
    ) -> Submission:
        """Accept an answer, or return the stored one. Raises domain errors."""

    async def load(self, session_id: str, user_id: str | None = None) -> StoredSession:
        """Read a session (sliding its TTL). Raises SessionNotFound, NotYourSession."""

    async def discard(self, session_id: str) -> None:
        """Delete a session just created and never handed out (a refused create)."""

    def is_fallback(self, session_id: str) -> bool:
        """True if this session lives in memory only because Redis was down."""

    def status(self) -> StoreStatus:
        """What /health reports about storage."""

    async def close(self) -> None: ...


class MemoryStore:
    """Sessions in this process's memory: `USE_MEMORY_SESSIONS=true`, and the Redis fallback.

    Atomicity comes from asyncio: no method awaits between reading and writing a session.
    Every access slides the TTL by the same amount, so least-recently-used order is expiry
    order and expired sessions are dropped from the front of an OrderedDict, O(1) each.
    Sessions are kept encoded so no caller ever holds (and mutates) the stored object.
    """

    kind = "memory"

    def __init__(
        self,
        ttl_seconds: float,
        clock: Callable[[], float] = time.monotonic,
        fallback: bool = False,
    ) -> None:
        self._ttl = ttl_seconds
        self._clock = clock
        self._fallback = fallback  # the Redis fallback: ids carry the fallback mark
        self._sessions: OrderedDict[str, tuple[float, bytes]] = OrderedDict()

    def __len__(self) -> int:
        self._expire()
        return len(self._sessions)

    async def create(self, session: StoredSession) -> str:
        self._expire()
        session_id = new_session_id(self._fallback)
        while session_id in self._sessions:
            session_id = new_session_id(self._fallback)
        self._put(session_id, session)
        return session_id

    async def submit(
        self, session_id: str, answer: AnswerCandidate, user_id: str | None = None
    ) -> Submission:
        session = self._get(session_id, user_id)
        submission = accept_answer(session, answer)
        if not submission.duplicate:
            self._put(session_id, session)
        return submission

    async def load(self, session_id: str, user_id: str | None = None) -> StoredSession:
        return self._get(session_id, user_id)

    async def discard(self, session_id: str) -> None:
        self.drop(session_id)

    def is_fallback(self, session_id: str) -> bool:
        return False

    async def close(self) -> None:
        self._sessions.clear()

    def holds(self, session_id: str) -> bool:
        self._expire()
        return session_id in self._sessions

    def snapshot(self) -> list[tuple[str, StoredSession, float]]:
        """Every live session with its remaining TTL, without touching them (for write-back)."""
        self._expire()
        now = self._clock()
        return [(sid, _decode(raw), at - now) for sid, (at, raw) in self._sessions.items()]

    def peek(self, session_id: str) -> StoredSession | None:
        """The session as stored, without sliding its TTL."""
        entry = self._sessions.get(session_id)
        return None if entry is None else _decode(entry[1])

    def status(self) -> StoreStatus:
        return StoreStatus(
            storage="memory", redis="not-configured", fallback_mode=False, fallback_sessions=0
        )

    def drop(self, session_id: str) -> None:
        self._sessions.pop(session_id, None)

    def _get(self, session_id: str, user_id: str | None) -> StoredSession:
        """Decode a session and slide its TTL: the owner's read counts as use even if a write
        is then refused; a stranger's does not."""
        self._expire()
        entry = self._sessions.get(session_id)
        if entry is None:
            raise SessionNotFound()
        session = _decode(entry[1])
        check_owner(session, user_id)
        self._sessions[session_id] = (self._clock() + self._ttl, entry[1])
        self._sessions.move_to_end(session_id)
        return session

    def _put(self, session_id: str, session: StoredSession) -> None:
        self._sessions[session_id] = (self._clock() + self._ttl, _encode(session))
        self._sessions.move_to_end(session_id)

    def _expire(self) -> None:
        now = self._clock()
        while self._sessions:
            session_id, (expires_at, _) = next(iter(self._sessions.items()))
            if expires_at > now:
                break
            del self._sessions[session_id]
