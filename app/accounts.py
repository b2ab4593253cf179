"""Players' accounts in Redis: users, the email index, refresh-token families, login attempts,
per-client limits and the progression ledger.

Redis is their only store, reached through the same link as the sessions (app/redis_link.py),
so an outage fails fast here too. Every operation is labelled `account:<operation>` in the
metrics, written out at each call.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, TypeVar

import msgspec

from app import keys
from app.errors import EmailTaken, StorageUnavailable
from app.models import Progression, StoredUser
from app.redis_link import Arg, RedisLink, stop_task
from app.scripts import Award, Claimed, Rotated, Updated

T = TypeVar("T")
# A ledger entry is forgotten this long after its game's last results call: the game's session
# expired long before, so no results call can award it again (award_progression.lua).
LEDGER_RETENTION_MS = 30 * 24 * 3600 * 1000
_encode = msgspec.json.Encoder().encode
_decode_user = msgspec.json.Decoder(StoredUser).decode


# How long an instance trusts what it read of a login (alive) and of its player's timer
# multiplier, when no invalidation says otherwise. Invalidations (logout, reuse detection, a
# settings change) normally arrive within milliseconds; this bounds a lost one.
ACCESS_CACHE_SECONDS = 5.0
ACCESS_CACHE_SIZE = 10_000


class AccessCache:
    """What the last revocation checks found: login family -> (player, timer multiplier, until).

    A signed-in request's check costs a Redis round trip (EXISTS refresh:{family} and the
    player's multiplier, pipelined): about a third of a signed-in answer's CPU. So an instance
    keeps what it found for ACCESS_CACHE_SECONDS, but only while it is subscribed to the
    instances' invalidations: a logout, a reused refresh token (the family revoked) or a
    settings change is published on `keys.INVALIDATIONS` and drops the entry everywhere. While
    the subscription is down nothing is cached or trusted. So a revoked token works on another
    instance until the message arrives (milliseconds), at most ACCESS_CACHE_SECONDS if the
    message is lost without the subscription noticing (a silent network partition).
    """

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._entries: dict[str, tuple[str, float, float]] = {}
        self._clock = clock
        self.generation = 0  # moves on with every invalidation: a read begun before is stale
        self.listening = False

    def get(self, family: str, user_id: str) -> float | None:
        entry = self._entries.get(family)
        if not self.listening or entry is None:
            return None
        owner, multiplier, until = entry
        return multiplier if owner == user_id and until > self._clock() else None

    def put(self, family: str, user_id: str, multiplier: float, generation: int) -> None:
        if not self.listening or generation != self.generation:
            return  # an invalidation may have come while this was being read
        if len(self._entries) >= ACCESS_CACHE_SIZE:
            self._entries.pop(next(iter(self._entries)))
        self._entries[family] = (user_id, multiplier, self._clock() + ACCESS_CACHE_SECONDS)

    def forget(self, message: bytes) -> None:
        """An invalidation: `family:<id>` (the login ended) or `user:<id>` (settings changed)."""
        self.generation += 1
        kind, _, name = message.decode().partition(":")
        if kind == "family":
            self._entries.pop(name, None)
        else:
            for family in [f for f, (owner, _, _) in self._entries.items() if owner == name]:
                del self._entries[family]

    def subscribed(self) -> None:
        self.listening = True

    def lost(self) -> None:
        self.listening = False
        self.generation += 1
        self._entries.clear()


class AccountStore:
    def __init__(self, link: RedisLink | None) -> None:
        self._link = link  # None: this instance runs without Redis (USE_MEMORY_SESSIONS=true)
        self._access = AccessCache()
        self._listener: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """Listen for the other instances' invalidations of what is cached."""
        if self._link is not None:
            self._listener = asyncio.create_task(
                self._link.listen(
                    keys.INVALIDATIONS,
                    self._access.forget,
                    self._access.subscribed,
                    self._access.lost,
                ),
                name="account-invalidations",
            )

    async def close(self) -> None:
        await stop_task(self._listener)

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
        # A step may be sent twice (redis-py retries a batch whose reply timed out, and Redis
        # may have applied it): the fresh id exists only if this sign-up wrote it, and an email
        # claimed by this same id was claimed by this sign-up.
        await self._script("create_document", [keys.user(user.id)], _encode(user), 0)
        email = keys.email(user.email)
        if await self._command("claim_email", "SET", email, user.id, "NX"):
            return
        holder = await self._command("find_email", "GET", email)
        if holder is not None and holder.decode() == user.id:
            return
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
        await self._invalidate(f"user:{user_id}")
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
        now_ms: int,
    ) -> Progression | None:
        """Add a finished game's progression once; later calls return the first award. None if
        the player no longer exists."""
        reply = await self._script(
            "award_progression",
            [keys.user(user_id), keys.awards(user_id), keys.award_times(user_id)],
            session_id,
            progression.xp_earned,
            progression.gems_earned,
            score,
            correct,
            questions,
            now_ms,
            LEDGER_RETENTION_MS,
        )
        if Award(reply[0]) == Award.NO_PLAYER:
            return None
        return Progression(xp_earned=reply[1], gems_earned=reply[2])

    # --- tokens ----------------------------------------------------------------------------------

    async def access_state(self, family: str, user_id: str) -> tuple[bool, float]:
        """(revoked?, timer multiplier) of an access token's holder: from the AccessCache, or in
        one round trip (the two reads are issued together and share a pipeline). A token is
        revoked when its family has ended (logout, reuse detection) or its player no longer
        exists."""
        cached = self._access.get(family, user_id)
        if cached is not None:
            return False, cached
        generation = self._access.generation
        live, raw = await asyncio.gather(
            self._command("check_family", "EXISTS", keys.refresh(family)),
            self._command("read_multiplier", *self._read_user(user_id, ".timerMultiplier")),
        )
        if raw is None:
            return True, 1.0
        multiplier = float(raw) if self._storage == "json" else _decode_user(raw).timer_multiplier
        if live:
            self._access.put(family, user_id, multiplier, generation)
        return not live, multiplier

    async def start_family(self, family: str, token_id: str, ttl_ms: int) -> None:
        await self._command("start_family", "SET", keys.refresh(family), token_id, "PX", ttl_ms)

    async def rotate(
        self, family: str, old_id: str, new_id: str, ttl_ms: int, now_ms: int, grace_ms: int
    ) -> tuple[Rotated, str]:
        """The outcome, and the id of the family's live refresh token afterwards."""
        reply = await self._script(
            "rotate_refresh", [keys.refresh(family)], old_id, new_id, ttl_ms, now_ms, grace_ms
        )
        outcome = Rotated(reply[0])
        if outcome == Rotated.REUSED:  # the script revoked the family
            await self._invalidate(f"family:{family}")
        return outcome, reply[1].decode() if outcome == Rotated.GRACE else new_id

    async def end_family(self, family: str) -> None:
        """Logout: the refresh token and every access token of this login stop working."""
        await self._command("end_family", "DEL", keys.refresh(family))
        await self._invalidate(f"family:{family}")

    async def _invalidate(self, message: str) -> None:
        """Drop what this and every other instance cached of a login or a player."""
        self._access.forget(message.encode())
        await self._command("invalidate", "PUBLISH", keys.INVALIDATIONS, message)

    # --- limits ----------------------------------------------------------------------------------

    async def claim_login(
        self, email: str, client: str, per_client: int, per_email: int, window_ms: int
    ) -> tuple[bool, int]:
        """Count a login attempt for `email` before its password is checked: (claimed, attempts
        from this client) or (refused, milliseconds until the window ends)."""
        reply = await self._script(
            "claim_login",
            [keys.login_attempts(email)],
            client,
            per_client,
            per_email,
            window_ms,
        )
        return Claimed(reply[0]) == Claimed.CLAIMED, reply[1]

    async def release_login(self, email: str, client: str) -> None:
        """Give back an attempt `claim_login` counted, its password never checked."""
        key = keys.login_attempts(email)
        await asyncio.gather(
            self._command("release_login", "HINCRBY", key, f"c:{client}", -1),
            self._command("release_login", "HINCRBY", key, "all", -1),
        )

    async def clear_login(self, email: str) -> None:
        await self._command("clear_login", "DEL", keys.login_attempts(email))

    async def use(
        self, client: str, action: str, limit: int, window_ms: int, amount: int = 1
    ) -> tuple[bool, int]:
        """Count one use of `action` by `client` (amount -1 gives one back): (claimed, uses) or
        (refused, milliseconds until the window ends)."""
        reply = await self._script(
            "rate_limit", [keys.rate(client, action)], limit, window_ms, amount
        )
        return Claimed(reply[0]) == Claimed.CLAIMED, reply[1]

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
