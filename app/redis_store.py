"""Sessions in Redis, each change one Lua script: one round trip, TTL reset in the same call.

Two storages, detected at connect time, behind the same scripts: a RedisJSON document where the
server has the JSON module (redis-stack, Redis 8), else a JSON string changed with cjson (Valkey,
managed Redis without modules, Debian's redis-server). Key names come from app/keys.py.
"""

from __future__ import annotations

import asyncio
import time
from asyncio import Future
from collections.abc import Awaitable
from pathlib import Path
from typing import Any, Literal, TypeVar

import msgspec
from redis import exceptions as redis_errors
from redis.asyncio import BlockingConnectionPool, Redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.commands.core import AsyncScript

from app import keys
from app.errors import (
    NotYourSession,
    QuestionNotInSession,
    SessionNotFound,
    StorageUnavailable,
    WagerNotAllowed,
    WagerTooHigh,
)
from app.metrics import Metrics
from app.models import AnswerCandidate, StoredAnswer, StoredSession, StoreStatus
from app.rules import Submission
from app.settings import Settings
from app.store import new_session_id

LUA_DIR = Path(__file__).resolve().parent.parent / "lua"

Storage = Literal["json", "string"]
RedisFailure = (redis_errors.ConnectionError, redis_errors.TimeoutError)
T = TypeVar("T")

_encode = msgspec.json.Encoder().encode
_decode_session = msgspec.json.Decoder(StoredSession).decode
_decode_answer = msgspec.json.Decoder(StoredAnswer).decode


def _milliseconds(seconds: float) -> int:
    """A TTL for PEXPIRE: at least 1 ms (0 would delete the key)."""
    return max(1, round(seconds * 1000))


def load_script(client: Redis, name: str) -> AsyncScript:
    return client.register_script((LUA_DIR / f"{name}.lua").read_text())


class AutoPipeline:
    """Sends the script calls that requests make in the same event-loop iteration to Redis
    together, as one pipeline: one connection checkout, one write and one timeout for the
    batch instead of one each.

    Each call still gets its own reply or error, and a failure of the batch (timeout, lost
    connection) fails every call in it, like separate calls would have failed. The scripts
    are independent, so batching changes no outcome; redis-py's per-command overhead was the
    largest part of an answer's CPU (see README, Performance).
    """

    def __init__(self, client: Redis) -> None:
        self.client = client
        self._pending: list[tuple[tuple[str | bytes | int, ...], Future[Any]]] = []

    def evalsha(self, sha: str, key: str, *args: str | bytes | int) -> Future[Any]:
        future = asyncio.get_running_loop().create_future()
        if not self._pending:
            asyncio.get_running_loop().call_soon(self._flush)
        self._pending.append(((sha, 1, key, *args), future))
        return future

    def _flush(self) -> None:
        batch, self._pending = self._pending, []
        task = asyncio.ensure_future(self._send(batch))
        _in_flight.add(task)
        task.add_done_callback(_in_flight.discard)

    async def _send(self, batch: list[tuple[tuple[str | bytes | int, ...], Future[Any]]]) -> None:
        try:
            async with self.client.pipeline(transaction=False) as pipe:
                for args, _ in batch:
                    pipe.execute_command("EVALSHA", *args)
                replies = await pipe.execute(raise_on_error=False)
        except Exception as exc:
            replies = [exc] * len(batch)
        for (_, future), reply in zip(batch, replies, strict=True):
            if future.done():  # its request was cancelled meanwhile
                continue
            if isinstance(reply, Exception):
                future.set_exception(reply)
            else:
                future.set_result(reply)


_in_flight: set[asyncio.Task[None]] = set()  # strong references until each batch is sent


async def evalsha(
    pipeline: AutoPipeline, script: AsyncScript, key: str, *args: str | bytes | int
) -> Any:
    """EVALSHA of a one-key script, loading it on NOSCRIPT (after a Redis restart or failover)."""
    try:
        return await pipeline.evalsha(script.sha, key, *args)
    except redis_errors.NoScriptError:
        script.sha = await pipeline.client.script_load(script.script)
        return await pipeline.evalsha(script.sha, key, *args)


def connect(settings: Settings) -> Redis:
    """A client whose every call is bounded: short timeouts, one retry, a pool that waits briefly.

    A blocking pool, because redis-py's default pool raises a ConnectionError the moment it is
    full, which would read as "Redis is down" under a burst of players. Worst case for one call:
    pool wait + (1 + retries) x timeout.
    """
    timeout = settings.redis_timeout_seconds
    pool = BlockingConnectionPool.from_url(
        settings.redis_url,
        max_connections=settings.redis_max_connections,
        timeout=timeout,
        socket_timeout=timeout,
        socket_connect_timeout=timeout,
        retry=Retry(NoBackoff(), retries=1),
    )
    return Redis(connection_pool=pool)


async def detect_storage(client: Redis) -> Storage:
    """ "json" if the server knows JSON.* commands (cheaper than parsing MODULE LIST, which
    managed services often disable)."""
    try:
        await client.execute_command("JSON.TYPE", keys.session("probe"))  # type: ignore[no-untyped-call]
    except redis_errors.ResponseError:
        return "string"
    return "json"


class RedisStore:
    def __init__(
        self, client: Redis, ttl_seconds: float, storage: Storage, metrics: Metrics | None = None
    ) -> None:
        self.client = client
        self.storage = storage
        self.kind = "redis-json" if storage == "json" else "redis"
        self.last_latency_seconds: float | None = None
        self._ttl_ms = _milliseconds(ttl_seconds)
        self._metrics = metrics or Metrics()
        self._pipeline = AutoPipeline(client)
        self._scripts = {
            name: load_script(client, name)
            for name in ("create_session", "read_session", "submit_answer", "restore_session")
        }

    async def measured(self, name: str, call: Awaitable[T]) -> T:
        """Await one Redis operation labelled `name` in the metrics; a Redis failure becomes
        StorageUnavailable."""
        started = time.perf_counter()
        try:
            return await call
        except RedisFailure as exc:
            self._metrics.redis_errors.labels(name).inc()
            raise StorageUnavailable() from exc
        finally:
            self.last_latency_seconds = time.perf_counter() - started
            self._metrics.observe_redis(name, self.last_latency_seconds)

    async def _call(self, name: str, session_id: str, *args: str | bytes | int) -> Any:
        """Run one session script (its storage appended as the last argument)."""
        script, key = self._scripts[name], keys.session(session_id)
        return await self.measured(name, evalsha(self._pipeline, script, key, *args, self.storage))

    async def create(self, session: StoredSession) -> str:
        document = _encode(session)
        while True:  # a taken random UUID does not happen in practice; never overwrite one
            session_id = new_session_id()
            if await self._call("create_session", session_id, document, self._ttl_ms):
                return session_id

    async def restore(self, session_id: str, session: StoredSession, ttl_seconds: float) -> bool:
        """Write back a fallback session; False if a different session holds its key."""
        return bool(
            await self._call(
                "restore_session", session_id, _encode(session), _milliseconds(ttl_seconds)
            )
        )

    def is_fallback(self, session_id: str) -> bool:
        return False

    def status(self) -> StoreStatus:
        latency = self.last_latency_seconds
        return StoreStatus(
            storage=self.kind,
            redis="connected",
            fallback_mode=False,
            fallback_sessions=0,
            redis_latency_ms=None if latency is None else round(latency * 1000, 3),
        )

    async def submit(
        self, session_id: str, answer: AnswerCandidate, user_id: str | None = None
    ) -> Submission:
        reply = await self._call(
            "submit_answer",
            session_id,
            answer.question_id,
            _encode(answer.regular),
            _encode(answer.final),
            -1 if answer.wager is None else answer.wager,
            self._ttl_ms,
            user_id or "",
        )
        return self._submit_outcome(answer.question_id, reply)

    @staticmethod
    def _submit_outcome(question_id: str, reply: list[int | bytes]) -> Submission:
        """The one place where submit_answer.lua's return codes become domain outcomes."""
        code = reply[0]
        if code == 0:
            assert isinstance(reply[1], bytes)
            return Submission(_decode_answer(reply[1]), duplicate=False, completed=reply[2] == 1)
        if code == 1:
            assert isinstance(reply[1], bytes)
            return Submission(_decode_answer(reply[1]), duplicate=True, completed=False)
        if code == -1:
            raise SessionNotFound()
        if code == -2:
            raise QuestionNotInSession(question_id)
        if code == -3:
            raise WagerNotAllowed()
        if code == -4:
            assert isinstance(reply[1], int)
            raise WagerTooHigh(reply[1])
        if code == -5:
            raise NotYourSession()
        raise RuntimeError(f"submit_answer.lua returned unknown code {code!r}")

    async def load(self, session_id: str, user_id: str | None = None) -> StoredSession:
        raw = await self._call("read_session", session_id, self._ttl_ms, user_id or "")
        if raw is None:
            raise SessionNotFound()
        if raw == -5:
            raise NotYourSession()
        return _decode_session(raw)

    async def ping(self) -> bool:
        started = time.perf_counter()
        try:
            await self.client.ping()
        except RedisFailure:
            return False
        self.last_latency_seconds = time.perf_counter() - started
        return True

    async def close(self) -> None:
        await self.client.aclose()
