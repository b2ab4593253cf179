"""Keep serving when Redis fails: Redis first, this instance's memory while it is unreachable.

- Every Redis call is bounded (timeouts in `redis_store.connect`); consecutive failures open the
  circuit breaker, and while it is open no request waits on Redis at all.
- New sessions go to memory while Redis is unusable (responses say `degraded: true`); those
  sessions keep working here with the same rules. Any other session id gets StorageUnavailable
  (503): while Redis is unreachable this instance cannot know whether the game exists.
- A background task PINGs Redis while the breaker is open, closes it when Redis answers, and
  writes every fallback session back (restore_session.lua: never over another session,
  idempotent through lost replies), dropping it from memory once Redis holds all its answers.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from typing import TypeVar

from redis.asyncio import Redis

from app.breaker import CircuitBreaker, State
from app.errors import GameError, StorageUnavailable
from app.metrics import Metrics
from app.models import AnswerCandidate, StoredSession, StoreStatus
from app.redis_store import RedisFailure, RedisStore, detect_storage
from app.rules import Submission
from app.settings import Settings
from app.store import MemoryStore

log = logging.getLogger("app.storage")
T = TypeVar("T")


class FallbackStore:
    def __init__(self, client: Redis, settings: Settings, metrics: Metrics) -> None:
        self.client = client
        self.memory = MemoryStore(settings.session_ttl_seconds)
        self.redis: RedisStore | None = None  # known once Redis has answered (storage detected)
        self.breaker = CircuitBreaker(settings.breaker_failures, self._breaker_changed)
        self._settings = settings
        self._metrics = metrics
        self._task: asyncio.Task[None] | None = None

    @property
    def kind(self) -> str:
        return self.redis.kind if self.redis is not None else "redis"

    async def start(self) -> None:
        if not await self._connect():
            self.breaker.trip()
        self._task = asyncio.create_task(self._maintain(), name="redis-probe")

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await self.client.aclose()

    # --- the SessionStore interface -------------------------------------------------------------

    async def create(self, session: StoredSession) -> str:
        redis = self._usable()
        if redis is not None:
            with contextlib.suppress(StorageUnavailable):
                return await self._guard(redis.create(session))
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
        return await self._guard(self._required().submit(session_id, answer, user_id))

    async def load(self, session_id: str, user_id: str | None = None) -> StoredSession:
        if self.memory.holds(session_id):
            return await self.memory.load(session_id, user_id)
        return await self._guard(self._required().load(session_id, user_id))

    def is_fallback(self, session_id: str) -> bool:
        return self.memory.holds(session_id)

    def status(self) -> StoreStatus:
        down = self.breaker.is_open or self.redis is None
        failing = down or self.breaker.failures > 0
        latency = self.redis.last_latency_seconds if self.redis is not None else None
        return StoreStatus(
            storage=self.kind,
            redis="disconnected" if failing else "connected",
            fallback_mode=down,
            fallback_sessions=len(self.memory),
            breaker=self.breaker.state,
            redis_latency_ms=None if latency is None else round(latency * 1000, 3),
        )

    async def run(self, name: str, operation: Callable[[RedisStore], Awaitable[T]]) -> T:
        """Run another Redis operation (accounts) through the same breaker, bounds and
        metrics; `name` labels it in redis_call_duration_seconds and redis_errors_total."""
        redis = self._required()
        return await self._guard(redis.measured(name, operation(redis)))

    # --- Redis access through the breaker -------------------------------------------------------

    def _usable(self) -> RedisStore | None:
        return None if self.breaker.is_open else self.redis

    def _required(self) -> RedisStore:
        redis = self._usable()
        if redis is None:
            raise StorageUnavailable()
        return redis

    async def _guard(self, call: Awaitable[T]) -> T:
        """Await a Redis store call, telling the breaker whether Redis answered."""
        try:
            result = await call
        except StorageUnavailable:
            self.breaker.record_failure()
            raise
        except GameError:  # a domain answer (not found, bad wager...): Redis is fine
            self.breaker.record_success()
            raise
        self.breaker.record_success()
        return result

    def _breaker_changed(self, state: State) -> None:
        self._metrics.breaker_open.set(1 if state == "open" else 0)
        self._metrics.breaker_transitions.labels(state).inc()
        if state == "open":
            log.warning(
                "Redis unreachable: circuit open, new games go to memory, Redis games get 503"
            )
        else:
            log.warning(
                "Redis answers again: circuit closed, writing back %d fallback sessions",
                len(self.memory),
            )

    # --- probe and write-back ------------------------------------------------------------------

    async def _connect(self) -> bool:
        try:
            storage = await detect_storage(self.client)
        except RedisFailure:
            return False
        self.redis = RedisStore(
            self.client, self._settings.session_ttl_seconds, storage, self._metrics
        )
        log.info("session storage: %s", self.redis.kind)
        return True

    async def _maintain(self) -> None:
        while True:
            await asyncio.sleep(self._settings.breaker_probe_seconds)
            try:
                await self._probe_and_write_back()
            except Exception:  # the loop must outlive any one bad round
                log.exception("Redis probe failed")

    async def _probe_and_write_back(self) -> None:
        if self.redis is None and not await self._connect():
            return
        assert self.redis is not None
        # Probe while open, and also after a failure while still closed, so a dead Redis opens
        # the breaker within a few probes even when no request comes to notice it.
        if self.breaker.is_open or self.breaker.failures:
            if not await self.redis.ping():
                self.breaker.record_failure()
                return
            self.breaker.close()
        if len(self.memory):
            await self.write_back(self.redis)

    async def write_back(self, redis: RedisStore) -> None:
        for session_id, session, ttl in self.memory.snapshot():
            try:
                restored = await self._guard(redis.restore(session_id, session, ttl))
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
        if not len(self.memory):
            log.warning("all fallback sessions are in Redis again")
