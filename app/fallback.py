"""Keep serving when Redis fails: Redis first, this instance's memory while it is unusable.

- Every Redis call is bounded and guarded by the circuit breaker (app/redis_link.py); while it
  is open no request waits on Redis at all.
- New sessions go to memory while Redis is unusable (responses say `degraded: true`); those
  sessions keep working here with the same rules. Any other session id gets StorageUnavailable
  (503): while Redis is unreachable this instance cannot know whether the game exists.
- A background task probes Redis while the breaker is open, closes it when Redis answers, and
  writes every fallback session back (restore_session.lua: never over another session,
  idempotent through lost replies), dropping it from memory once Redis holds all its answers.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from app.errors import StorageUnavailable
from app.metrics import Metrics
from app.models import AnswerCandidate, StoredSession, StoreStatus
from app.redis_link import RedisLink
from app.redis_store import RedisStore
from app.rules import Submission
from app.settings import Settings
from app.store import MemoryStore

log = logging.getLogger("app.storage")


class FallbackStore:
    def __init__(self, link: RedisLink, settings: Settings, metrics: Metrics) -> None:
        self.link = link
        self.redis = RedisStore(link, settings.session_ttl_seconds)
        self.memory = MemoryStore(settings.session_ttl_seconds)
        self._probe_seconds = settings.breaker_probe_seconds
        self._metrics = metrics
        self._task: asyncio.Task[None] | None = None

    @property
    def kind(self) -> str:
        return self.link.kind

    async def start(self) -> None:
        if not await self.link.connect():
            self.link.breaker.trip()
        self._task = asyncio.create_task(self._maintain(), name="redis-probe")

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await self.link.close()

    # --- the SessionStore interface -------------------------------------------------------------

    async def create(self, session: StoredSession) -> str:
        if self.link.usable:
            with contextlib.suppress(StorageUnavailable):
                return await self.redis.create(session)
        # A fresh id in memory: if the failed create was applied after all, that orphan is never
        # handed out and simply expires.
        session_id = await self.memory.create(session)
        self._metrics.fallback_sessions.set(len(self.memory))
        return session_id

    async def submit(
        self, session_id: str, answer: AnswerCandidate, user_id: str | None = None
    ) -> Submission:
        if self.memory.holds(session_id):
            return await self.memory.submit(session_id, answer, user_id)
        return await self.redis.submit(session_id, answer, user_id)

    async def load(self, session_id: str, user_id: str | None = None) -> StoredSession:
        if self.memory.holds(session_id):
            return await self.memory.load(session_id, user_id)
        return await self.redis.load(session_id, user_id)

    async def discard(self, session_id: str) -> None:
        if self.memory.holds(session_id):
            self.memory.drop(session_id)
        else:
            await self.redis.discard(session_id)

    def is_fallback(self, session_id: str) -> bool:
        return self.memory.holds(session_id)

    def status(self) -> StoreStatus:
        breaker = self.link.breaker
        down = not self.link.usable
        latency = self.link.last_latency_seconds
        return StoreStatus(
            storage=self.kind,
            redis="disconnected" if down or breaker.failures > 0 else "connected",
            fallback_mode=down,
            fallback_sessions=len(self.memory),
            breaker=breaker.state,
            redis_latency_ms=None if latency is None else round(latency * 1000, 3),
        )

    # --- probe and write-back ------------------------------------------------------------------

    async def _maintain(self) -> None:
        while True:
            await asyncio.sleep(self._probe_seconds)
            try:
                await self._probe_and_write_back()
            except Exception:  # the loop must outlive any one bad round
                log.exception("Redis probe failed")

    async def _probe_and_write_back(self) -> None:
        if not await self.link.connect():
            return
        # Probe while open, and also after a failure while still closed, so a dead Redis opens
        # the breaker within a few probes even when no request comes to notice it.
        breaker = self.link.breaker
        if (breaker.is_open or breaker.failures) and not await self.link.probe():
            return
        if len(self.memory):
            await self.write_back()

    async def write_back(self) -> None:
        pending = len(self.memory)
        for session_id, session, ttl in self.memory.snapshot():
            try:
                restored = await self.redis.restore(session_id, session, ttl)
            except StorageUnavailable:
                return  # next round
            if not restored:
                self._metrics.write_backs.labels("conflict").inc()
                log.error("fallback session %s: its key holds another session", session_id)
                continue
            current = self.memory.peek(session_id)
            # Answers taken while the restore was in flight are appended by the next round.
            if current is None or len(current.answers) == len(session.answers):
                self.memory.drop(session_id)
                self._metrics.write_backs.labels("written").inc()
        self._metrics.fallback_sessions.set(len(self.memory))
        if pending and not len(self.memory):
            log.warning("all %d fallback sessions are in Redis again", pending)
