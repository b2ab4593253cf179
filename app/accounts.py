"""Players' accounts in Redis: users, the email index, refresh-token families, revoked access
tokens, failed-login counters and the progression ledger.

Redis is their only store, reached through the same link as the sessions (app/redis_link.py),
so an outage fails fast here too. Every operation is labelled `account:<operation>` in the
metrics, written out at each call.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Sequence
from typing import Any, TypeVar

import msgspec

from app import keys
from app.errors import EmailTaken, StorageUnavailable
from app.models import Progression, StoredUser
from app.redis_link import Arg, RedisLink
from app.scripts import Award, Created, Rotated, Updated

T = TypeVar("T")
_encode = msgspec.json.Encoder().encode
_decode_user = msgspec.json.Decoder(StoredUser).decode


class AccountStore:
    def __init__(self, link: RedisLink | None) -> None:
        self._link = link  # None: this instance runs without Redis (USE_MEMORY_SESSIONS=true)

    # --- users -----------------------------------------------------------------------------------

    async def create_user(self, user: StoredUser) -> None:
        """Store a new player and claim the email; EmailTaken if it is claimed already.

        The document goes first (under a fresh id, so it cannot collide), then the email is
        claimed with SET NX: one key each, so it works the same on a Redis Cluster, where the two
        keys live in different slots. Of concurrent sign-ups for one email exactly one claim
        wins; the others delete their document and get EmailTaken. A crash between the two steps
        leaves a document no email points to: nobody can log in to it, it holds no progress, and
        a new sign-up with that email creates a new player.
        """
        reply = await self._script("create_document", [keys.user(user.id)], _encode(user), 0)
        if Created(reply) != Created.CREATED:
            raise AssertionError(f"user id {user.id} was taken")
        if not await self._command("claim_email", "SET", keys.email(user.email), user.id, "NX"):
            await self._command("drop_user", "DEL", keys.user(user.id))
            raise EmailTaken()

    async def user_by_email(self, email: str) -> StoredUser | None:
        user_id = await self._command("find_email", "GET", keys.email(email))
        return None if user_id is None else await self.user(user_id.decode())

    async def user(self, user_id: str) -> StoredUser | None:
        raw = await self._command("read_user", *self._read_user(user_id, "."))
        return None if raw is None else _decode_user(raw)

    async def set_timer_multiplier(self, user_id: str, multiplier: float) -> StoredUser | None:
        reply = await self._script("update_settings", [keys.user(user_id)], multiplier)
        if Updated(reply[0]) == Updated.NO_PLAYER:
            return None
        return _decode_user(reply[1])

    async def award(
        self,
        user_id: str,
        session_id: str,
        progression: Progression,
        score: int,
        correct: int,
        questions: int,
    ) -> Progression | None:
        """Add a finished game's progression once; later calls return the first award. None if
        the player no longer exists."""
        reply = await self._script(
            "award_progression",
            [keys.user(user_id), keys.awards(user_id)],
            session_id,
            progression.xp_earned,
            progression.gems_earned,
            score,
            correct,
            questions,
        )
        if Award(reply[0]) == Award.NO_PLAYER:
            return None
        return Progression(xp_earned=reply[1], gems_earned=reply[2])

    # --- tokens ----------------------------------------------------------------------------------

    async def access_state(self, token_id: str, user_id: str) -> tuple[bool, float]:
        """(revoked?, timer multiplier) of an access token's holder, in one round trip: the two
        reads are issued together and share a pipeline."""
        revoked, raw = await asyncio.gather(
            self._command("check_revoked", "EXISTS", keys.blacklist(token_id)),
            self._command("read_multiplier", *self._read_user(user_id, ".timerMultiplier")),
        )
        if raw is None:  # the account is gone: treat the token as revoked
            return True, 1.0
        if self._storage == "json":
            return bool(revoked), float(raw)
        return bool(revoked), _decode_user(raw).timer_multiplier

    async def start_family(self, family: str, token_id: str, ttl_ms: int) -> None:
        await self._command("start_family", "SET", keys.refresh(family), token_id, "PX", ttl_ms)

    async def rotate(self, family: str, old_id: str, new_id: str, ttl_ms: int) -> Rotated:
        reply = await self._script("rotate_refresh", [keys.refresh(family)], old_id, new_id, ttl_ms)
        return Rotated(reply)

    async def revoke(self, family: str, access_id: str, access_ttl_ms: int) -> None:
        """Logout: the refresh family is deleted and the access token blacklisted until expiry.
        Each step is idempotent, so a retry after a partial failure completes it."""
        end_family = self._command("end_family", "DEL", keys.refresh(family))
        if access_ttl_ms <= 0:
            await end_family
            return
        blacklist = keys.blacklist(access_id)
        await asyncio.gather(
            end_family,
            self._command("revoke_access", "SET", blacklist, 1, "PX", access_ttl_ms),
        )

    # --- login throttling ------------------------------------------------------------------------

    async def login_failures(self, email: str) -> tuple[int, int]:
        """(failed attempts in the current window, milliseconds until the window ends)."""
        key = keys.login_failures(email)
        count, ttl = await asyncio.gather(
            self._command("read_login_failures", "GET", key),
            self._command("read_login_window", "PTTL", key),
        )
        return int(count or 0), max(int(ttl), 0)

    async def record_login_failure(self, email: str, window_seconds: int) -> int:
        key = keys.login_failures(email)
        count, _ = await asyncio.gather(
            self._command("count_login_failure", "INCR", key),
            self._command("start_login_window", "EXPIRE", key, window_seconds, "NX"),
        )
        return int(count)

    async def clear_login_failures(self, email: str) -> None:
        await self._command("clear_login_failures", "DEL", keys.login_failures(email))

    # --- avatars --------------------------------------------------------------------------------

    async def set_avatar(self, user_id: str, image: bytes, version: str) -> bool:
        """Store a player's picture and its version in their document; False if the player no
        longer exists (nothing stored)."""
        reply = await self._script(
            "set_avatar", [keys.user(user_id), keys.avatar(user_id)], image, version
        )
        return Updated(reply[0]) == Updated.UPDATED

    async def avatar(self, user_id: str) -> bytes | None:
        image: bytes | None = await self._command("read_avatar", "GET", keys.avatar(user_id))
        return image

    # --- Redis access ---------------------------------------------------------------------------

    @property
    def _storage(self) -> str | None:
        return None if self._link is None else self._link.storage

    def _read_user(self, user_id: str, path: str) -> tuple[str, ...]:
        """The command reading `path` of a player's document (the whole of it as a string)."""
        if self._storage == "json":
            return ("JSON.GET", keys.user(user_id), path)
        return ("GET", keys.user(user_id))

    async def _command(self, operation: str, *args: Arg) -> Any:
        return await _as_accounts(self._required().command(f"account:{operation}", *args))

    async def _script(self, name: str, script_keys: Sequence[str], *args: Arg) -> Any:
        return await _as_accounts(self._required().script(name, script_keys, *args))

    def _required(self) -> RedisLink:
        if self._link is None:
            raise StorageUnavailable(
                "Accounts need Redis: this instance runs with USE_MEMORY_SESSIONS=true"
            )
        return self._link


async def _as_accounts(call: Awaitable[T]) -> T:
    """Say "accounts", not "game storage", when Redis cannot serve an account operation."""
    try:
        return await call
    except StorageUnavailable as exc:
        raise StorageUnavailable("Accounts are temporarily unavailable; retry shortly") from exc
