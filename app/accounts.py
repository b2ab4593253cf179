"""Players' accounts in Redis: users, the email index, refresh-token families, revoked access
tokens, failed-login counters and the progression ledger. Redis is their only store, reached
through the session store's breaker, so an outage fails fast here too."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import msgspec
from redis.asyncio import Redis
from redis.exceptions import WatchError

from app import keys
from app.errors import EmailTaken, StorageUnavailable
from app.fallback import FallbackStore
from app.models import Progression, StoredUser
from app.redis_store import RedisStore, Storage, load_script

T = TypeVar("T")

_encode = msgspec.json.Encoder().encode
_decode_user = msgspec.json.Decoder(StoredUser).decode
# Two signups racing for one email: the loser's EXEC fails and its retry sees the winner.
_SIGNUP_ATTEMPTS = 3


class Accounts:
    def __init__(self, sessions: FallbackStore | None) -> None:
        self._sessions = sessions
        self._scripts: dict[str, Any] = {}

    async def _run(self, operation: Callable[[Redis, Storage], Awaitable[T]]) -> T:
        """Run `operation` on Redis, labelled in the metrics as account:<its name>."""
        if self._sessions is None:
            raise StorageUnavailable(
                "Accounts need Redis: this instance runs with USE_MEMORY_SESSIONS=true"
            )

        async def call(redis: RedisStore) -> T:
            return await operation(redis.client, redis.storage)

        try:
            return await self._sessions.run(f"account:{operation.__name__}", call)
        except StorageUnavailable as exc:
            raise StorageUnavailable("Accounts are temporarily unavailable; retry shortly") from exc

    def _script(self, client: Redis, name: str) -> Any:
        if name not in self._scripts:
            self._scripts[name] = load_script(client, name)
        return self._scripts[name]

    # --- users -----------------------------------------------------------------------------------

    async def create_user(self, user: StoredUser) -> None:
        """Store a new user and claim its email together (WATCH/MULTI); EmailTaken if taken."""

        async def create_user(client: Redis, storage: Storage) -> None:
            email_key, document = keys.email(user.email), _encode(user)
            for _ in range(_SIGNUP_ATTEMPTS):
                async with client.pipeline(transaction=True) as pipe:
                    try:
                        await pipe.watch(email_key)
                        if await pipe.exists(email_key):
                            raise EmailTaken()
                        pipe.multi()  # type: ignore[no-untyped-call]
                        pipe.set(email_key, user.id)
                        _write_user(pipe, storage, user.id, document)
                        await pipe.execute()
                        return
                    except WatchError:
                        continue  # someone claimed or released the email meanwhile: look again
            raise StorageUnavailable("Too many concurrent signups for this email; retry")

        await self._run(create_user)

    async def user_by_email(self, email: str) -> StoredUser | None:
        async def user_by_email(client: Redis, storage: Storage) -> StoredUser | None:
            user_id = await client.get(keys.email(email))
            if user_id is None:
                return None
            return await _read_user(client, storage, _text(user_id))

        return await self._run(user_by_email)

    async def user(self, user_id: str) -> StoredUser | None:
        async def read_user(client: Redis, storage: Storage) -> StoredUser | None:
            return await _read_user(client, storage, user_id)

        return await self._run(read_user)

    async def set_timer_multiplier(self, user_id: str, multiplier: float) -> StoredUser | None:
        async def update_settings(client: Redis, storage: Storage) -> StoredUser | None:
            script = self._script(client, "update_settings")
            raw = await script(keys=[keys.user(user_id)], args=[multiplier, storage])
            return None if raw is None else _decode_user(raw)

        return await self._run(update_settings)

    async def award(
        self,
        user_id: str,
        session_id: str,
        progression: Progression,
        score: int,
        correct: int,
        questions: int,
    ) -> Progression | None:
        """Add a finished game's progression once; later calls return the first award."""

        async def award_progression(client: Redis, storage: Storage) -> Progression | None:
            script = self._script(client, "award_progression")
            reply = await script(
                keys=[keys.user(user_id), keys.awards(user_id)],
                args=[
                    session_id,
                    progression.xp_earned,
                    progression.gems_earned,
                    score,
                    correct,
                    questions,
                    storage,
                ],
            )
            if reply[0] == -1:
                return None
            return Progression(xp_earned=reply[0], gems_earned=reply[1])

        return await self._run(award_progression)

    # --- tokens ----------------------------------------------------------------------------------

    async def access_state(self, token_id: str, user_id: str) -> tuple[bool, float]:
        """(revoked?, timer multiplier) of an access token's holder, in one round trip."""

        async def access_state(client: Redis, storage: Storage) -> tuple[bool, float]:
            async with client.pipeline(transaction=False) as pipe:
                pipe.exists(keys.blacklist(token_id))
                if storage == "json":
                    pipe.execute_command("JSON.GET", keys.user(user_id), ".timerMultiplier")
                else:
                    pipe.get(keys.user(user_id))
                revoked, raw = await pipe.execute()
            if raw is None:  # the account is gone: treat the token as revoked
                return True, 1.0
            if storage == "json":
                return bool(revoked), float(raw)
            return bool(revoked), _decode_user(raw).timer_multiplier

        return await self._run(access_state)

    async def start_family(self, family: str, token_id: str, ttl_ms: int) -> None:
        async def start_family(client: Redis, storage: Storage) -> None:
            await client.set(keys.refresh(family), token_id, px=ttl_ms)

        await self._run(start_family)

    async def rotate(self, family: str, old_id: str, new_id: str, ttl_ms: int) -> int:
        async def rotate_refresh(client: Redis, storage: Storage) -> int:
            script = self._script(client, "rotate_refresh")
            result: int = await script(keys=[keys.refresh(family)], args=[old_id, new_id, ttl_ms])
            return result

        return await self._run(rotate_refresh)

    async def revoke(self, family: str, access_id: str, access_ttl_ms: int) -> None:
        """Logout: the refresh family is deleted and the access token blacklisted until expiry."""

        async def revoke_tokens(client: Redis, storage: Storage) -> None:
            async with client.pipeline(transaction=True) as pipe:
                pipe.delete(keys.refresh(family))
                if access_ttl_ms > 0:
                    pipe.set(keys.blacklist(access_id), 1, px=access_ttl_ms)
                await pipe.execute()

        await self._run(revoke_tokens)

    # --- login throttling ------------------------------------------------------------------------

    async def login_failures(self, email: str) -> tuple[int, int]:
        """(failed attempts in the current window, milliseconds until the window ends)."""

        async def login_failures(client: Redis, storage: Storage) -> tuple[int, int]:
            async with client.pipeline(transaction=False) as pipe:
                pipe.get(keys.login_failures(email))
                pipe.pttl(keys.login_failures(email))
                count, ttl = await pipe.execute()
            return int(count or 0), max(int(ttl), 0)

        return await self._run(login_failures)

    async def record_login_failure(self, email: str, window_seconds: int) -> int:
        async def record_login_failure(client: Redis, storage: Storage) -> int:
            async with client.pipeline(transaction=True) as pipe:
                pipe.incr(keys.login_failures(email))
                pipe.expire(keys.login_failures(email), window_seconds, nx=True)
                count, _ = await pipe.execute()
            return int(count)

        return await self._run(record_login_failure)

    async def clear_login_failures(self, email: str) -> None:
        async def clear_login_failures(client: Redis, storage: Storage) -> None:
            await client.delete(keys.login_failures(email))

        await self._run(clear_login_failures)


def _write_user(pipe: Any, storage: Storage, user_id: str, document: bytes) -> None:
    if storage == "json":
        pipe.execute_command("JSON.SET", keys.user(user_id), ".", document)
    else:
        pipe.set(keys.user(user_id), document)


async def _read_user(client: Redis, storage: Storage, user_id: str) -> StoredUser | None:
    if storage == "json":
        raw = await client.execute_command("JSON.GET", keys.user(user_id), ".")  # type: ignore[no-untyped-call]
    else:
        raw = await client.get(keys.user(user_id))
    return None if raw is None else _decode_user(raw)


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value
