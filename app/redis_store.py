"""Sessions as RedisJSON documents, each change one Lua script (one round trip, TTL included).

Key layout lives here and only here: `session:{sessionId}`.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import msgspec
from redis import exceptions as redis_errors
from redis.asyncio import BlockingConnectionPool, Redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from app.errors import (
    QuestionNotInSession,
    SessionNotFound,
    StorageUnavailable,
    WagerNotAllowed,
    WagerTooHigh,
)
from app.models import AnswerCandidate, StoredAnswer, StoredSession
from app.settings import Settings

LUA_DIR = Path(__file__).resolve().parent.parent / "lua"
SESSION_PREFIX = "session:"

_encode = msgspec.json.Encoder().encode
_decode_session = msgspec.json.Decoder(StoredSession).decode
_decode_answer = msgspec.json.Decoder(StoredAnswer).decode


def session_key(session_id: str) -> str:
    return SESSION_PREFIX + session_id


def connect(settings: Settings) -> Redis:
    """A client whose every call is bounded: short timeouts, one retry, a pool that waits briefly.

    A blocking pool, because redis-py's default pool raises a ConnectionError the moment it is
    full, which would read as "Redis is down" under a burst of players.
    """
    timeout = settings.redis_timeout_seconds
    pool = BlockingConnectionPool.from_url(
        settings.redis_url,
        max_connections=64,
        timeout=timeout,
        socket_timeout=timeout,
        socket_connect_timeout=timeout,
        retry=Retry(NoBackoff(), retries=1),
    )
    return Redis(connection_pool=pool)


@asynccontextmanager
async def unavailable_on_failure() -> AsyncIterator[None]:
    try:
        yield
    except (redis_errors.ConnectionError, redis_errors.TimeoutError) as exc:
        raise StorageUnavailable() from exc


class RedisJsonStore:
    kind = "redis-json"

    def __init__(self, client: Redis, ttl_seconds: float) -> None:
        self._client = client
        self._ttl_ms = max(1, round(ttl_seconds * 1000))
        self._create = client.register_script((LUA_DIR / "create_session.lua").read_text())
        self._read = client.register_script((LUA_DIR / "read_session.lua").read_text())
        self._submit = client.register_script((LUA_DIR / "submit_answer.lua").read_text())

    async def create(self, session_id: str, session: StoredSession) -> bool:
        async with unavailable_on_failure():
            created = await self._create(
                keys=[session_key(session_id)], args=[_encode(session), self._ttl_ms]
            )
        return bool(created)

    async def submit(self, session_id: str, answer: AnswerCandidate) -> tuple[StoredAnswer, bool]:
        args: list[str | bytes | int] = [
            answer.question_id,
            _encode(answer.regular),
            _encode(answer.final),
            -1 if answer.wager is None else answer.wager,
            self._ttl_ms,
        ]
        async with unavailable_on_failure():
            reply = await self._submit(keys=[session_key(session_id)], args=args)
        return self._submit_outcome(answer.question_id, reply)

    @staticmethod
    def _submit_outcome(question_id: str, reply: list[int | bytes]) -> tuple[StoredAnswer, bool]:
        """The one place where submit_answer.lua's return codes become domain outcomes."""
        code = reply[0]
        if code in (0, 1):
            assert isinstance(reply[1], bytes)
            return _decode_answer(reply[1]), code == 1
        if code == -1:
            raise SessionNotFound()
        if code == -2:
            raise QuestionNotInSession(question_id)
        if code == -3:
            raise WagerNotAllowed()
        if code == -4:
            assert isinstance(reply[1], int)
            raise WagerTooHigh(reply[1])
        raise RuntimeError(f"submit_answer.lua returned unknown code {code!r}")

    async def load(self, session_id: str) -> StoredSession:
        async with unavailable_on_failure():
            raw = await self._read(keys=[session_key(session_id)], args=[self._ttl_ms])
        if raw is None:
            raise SessionNotFound()
        return _decode_session(raw)

    async def ping(self) -> bool:
        try:
            return bool(await self._client.ping())
        except (redis_errors.ConnectionError, redis_errors.TimeoutError):
            return False

    async def close(self) -> None:
        await self._client.aclose()

    @staticmethod
    async def has_json_module(client: Redis) -> bool:
        modules = await client.module_list()
        return any(module.get(b"name", b"").lower() == b"rejson" for module in modules)
