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
import math
import time
from collections.abc import Iterator

from app.errors import SessionNotFound, StorageUnavailable
from app.metrics import Metrics
from app.models import AnswerCandidate, StoredSession, StoreStatus
from app.redis_link import RedisLink, stop_task
from app.redis_store import RedisStore
from app.rules import Submission
from app.settings import Settings
from app.store import MemoryStore, is_fallback_id

log = logging.getLogger("app.storage")

# After an outage, every instance writes its fallback sessions back within a probe period or
# two; until this long after the last failure this instance saw, a missing fallback-made game
# is "not yet written back" (503), not "never existed" (404).
WRITE_BACK_SECONDS = 15
SESSION_COUNT_SECONDS = 15
# At shutdown, the one last write-back of this instance's fallback sessions may take this long
# (10,000 sessions, FALLBACK_MAX_SESSIONS, took 2.3 s here). With the drain before it (1.5 s,
# app/shutdown.py), uvicorn's --timeout-graceful-shutdown (4 s) and the last Redis replies
# (1 s), an instance exits within 9.5 s of SIGTERM: inside Docker's 10 s stop timeout, so no
# SIGKILL cuts the write-back short.
CLOSE_WRITE_BACK_SECONDS = 3.0


class FallbackStore:
    def __init__(self, link: RedisLink, settings: Settings, metrics: Metrics) -> None:
        self.link = link
        self.redis = RedisStore(link, settings.session_ttl_seconds)
        self.memory = MemoryStore(settings.session_ttl_seconds, fallback=True)
        self._probe_seconds = settings.breaker_probe_seconds
        self._max_sessions = settings.fallback_max_sessions
        self._metrics = metrics
        self._task: asyncio.Task[None] | None = None
        self._stopping = False

    @property
    def kind(self) -> str:
        return self.link.kind

    async def start(self) -> None:
        if not await self.link.connect():
            self.link.breaker.trip()
        self._task = asyncio.create_task(self._maintain(), name="redis-probe")

    async def close(self) -> None:
        """Shutdown, once no request is in flight: stop the probe, write the fallback sessions
        back if Redis takes writes (one attempt, at most CLOSE_WRITE_BACK_SECONDS), then let the
        calls in flight finish and close the pool. Sessions not written back are lost with this
        process: the log says how many. The probe stops on a flag as well as on cancellation
        (`stop_task`)."""
        self._stopping = True
        await stop_task(self._task)
        await self._last_write_back()
        await self.link.close()

    async def _last_write_back(self) -> None:
        waiting = len(self.memory)
        if not waiting:
            return
        try:
            await asyncio.wait_for(self._probe_and_write_back(), CLOSE_WRITE_BACK_SECONDS)
        except (TimeoutError, StorageUnavailable):
            pass  # counted below
        except Exception:
            log.exception("write-back at shutdown failed")
        left = len(self.memory)
        if left:
            log.error(
                "shutdown: %d of %d fallback sessions written back; %d could not be (Redis "
                "unusable) and are lost with this process",
                waiting - left,
                waiting,
                left,
            )
        else:
            log.warning("shutdown: all %d fallback sessions written back to Redis", waiting)

    # --- the SessionStore interface -------------------------------------------------------------

    async def create(self, session: StoredSession) -> str:
        if self.link.usable:
            with contextlib.suppress(StorageUnavailable):
                return await self.redis.create(session)
        # A fresh id in memory: if the failed create was applied after all, that orphan is never
        # handed out and simply expires.
        if len(self.memory) >= self._max_sessions:
            raise StorageUnavailable("Too many games are waiting for storage; retry shortly")
        session_id = await self.memory.create(session)
        self._metrics.fallback_sessions.set(len(self.memory))
        return session_id

    async def submit(
        self, session_id: str, answer: AnswerCandidate, user_id: str | None = None
    ) -> Submission:
        if self.memory.holds(session_id):
            return await self.memory.submit(session_id, answer, user_id)
        with self._not_yet_written_back(session_id):
            return await self.redis.submit(session_id, answer, user_id)

    async def load(self, session_id: str, user_id: str | None = None) -> StoredSession:
        if self.memory.holds(session_id):
            return await self.memory.load(session_id, user_id)
        with self._not_yet_written_back(session_id):
            return await self.redis.load(session_id, user_id)

    @contextlib.contextmanager
    def _not_yet_written_back(self, session_id: str) -> Iterator[None]:
        """A game created in some instance's memory during an outage is not in Redis until that
        instance writes it back, just after Redis returns: for its id, "not found" shortly after
        an outage means "not yet", a 503 to retry, never a 404 for a game that is alive."""
        try:
            yield
        except SessionNotFound:
            if is_fallback_id(session_id) and self.link.troubled_within(WRITE_BACK_SECONDS):
                raise StorageUnavailable(
                    "This game is being moved back into storage; retry shortly"
                ) from None
            raise

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
        """Probe Redis every probe period, and four times as often while the breaker is open or
        sessions wait in memory, so they are written back as soon as Redis takes writes; every
        SESSION_COUNT_SECONDS, refresh the estimate of session keys."""
        counted_at = -math.inf
        while not self._stopping:
            waiting = self.link.breaker.is_open or len(self.memory) > 0
            await asyncio.sleep(self._probe_seconds / 4 if waiting else self._probe_seconds)
            try:
                await self._probe_and_write_back()
                if self.link.usable and time.monotonic() - counted_at > SESSION_COUNT_SECONDS:
                    counted_at = time.monotonic()
                    self._metrics.session_keys.set(await self.link.count_sessions())
            except StorageUnavailable:
                pass  # the breaker knows; the next round tries again
            except Exception:  # the loop must outlive any one bad round
                log.exception("Redis probe failed")

    async def _probe_and_write_back(self) -> None:
        """A heartbeat even while all is well: an idle instance notices an outage too."""
        if not await self.link.connect():
            return
        if not await self.link.probe(round(self._probe_seconds * 3000)):
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
