"""The session store interface and its in-memory implementation.

Both stores give the same guarantees: every read or write slides the TTL, a write never
re-creates an expired session, and `submit` applies `rules.accept_answer` atomically.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Protocol

import msgspec

from app.errors import SessionNotFound
from app.models import AnswerCandidate, StoredAnswer, StoredSession
from app.rules import accept_answer


class SessionStore(Protocol):
    kind: str  # "redis-json" or "memory", as /health reports it

    async def create(self, session_id: str, session: StoredSession) -> bool:
        """Store a new session; False (and nothing written) if the id is taken."""

    async def submit(self, session_id: str, answer: AnswerCandidate) -> tuple[StoredAnswer, bool]:
        """Accept an answer; return (stored answer, duplicate?). Raises domain errors."""

    async def load(self, session_id: str) -> StoredSession:
        """Read a session (sliding its TTL). Raises SessionNotFound."""

    async def ping(self) -> bool: ...

    async def close(self) -> None: ...


class MemoryStore:
    """Sessions in this process's memory, for `USE_MEMORY_SESSIONS=true` and tests.

    Atomicity comes from asyncio: no method awaits between reading and writing a session.
    Since every access slides the TTL by the same amount, least-recently-used order is expiry
    order, so expired sessions are dropped from the front of an OrderedDict in O(1) each.
    """

    kind = "memory"

    def __init__(self, ttl_seconds: float, clock: Callable[[], float] = time.monotonic) -> None:
        self._ttl = ttl_seconds
        self._clock = clock
        # Sessions are kept encoded so callers never share (and mutate) the stored object.
        self._sessions: OrderedDict[str, tuple[float, bytes]] = OrderedDict()

    async def create(self, session_id: str, session: StoredSession) -> bool:
        self._expire()
        if session_id in self._sessions:
            return False
        self._put(session_id, session)
        return True

    async def submit(self, session_id: str, answer: AnswerCandidate) -> tuple[StoredAnswer, bool]:
        session = self._get(session_id)
        stored, duplicate = accept_answer(session, answer)
        if not duplicate:
            self._put(session_id, session)
        return stored, duplicate

    async def load(self, session_id: str) -> StoredSession:
        return self._get(session_id)

    async def ping(self) -> bool:
        return True

    async def close(self) -> None:
        self._sessions.clear()

    def ttl(self, session_id: str) -> float | None:
        """Seconds left, or None if absent (for tests and write-back)."""
        entry = self._sessions.get(session_id)
        return None if entry is None else entry[0] - self._clock()

    def _get(self, session_id: str) -> StoredSession:
        """Decode a session and slide its TTL: a read counts as use even if a write is refused."""
        self._expire()
        entry = self._sessions.get(session_id)
        if entry is None:
            raise SessionNotFound()
        self._sessions[session_id] = (self._clock() + self._ttl, entry[1])
        self._sessions.move_to_end(session_id)
        return msgspec.json.decode(entry[1], type=StoredSession)

    def _put(self, session_id: str, session: StoredSession) -> None:
        self._sessions[session_id] = (self._clock() + self._ttl, msgspec.json.encode(session))
        self._sessions.move_to_end(session_id)

    def _expire(self) -> None:
        now = self._clock()
        while self._sessions:
            session_id, (expires_at, _) = next(iter(self._sessions.items()))
            if expires_at > now:
                break
            del self._sessions[session_id]
