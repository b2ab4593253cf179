"""Sign-up, login, token rotation and revocation, and who is calling.

Access tokens: JWT HS256, `ACCESS_TOKEN_SECONDS` (15 min), sent as `Authorization: Bearer`.
Refresh tokens: JWT HS256, `REFRESH_TOKEN_SECONDS` (30 days), in an HttpOnly SameSite=Strict
cookie; each refresh rotates it, and presenting a used one revokes its whole family.
"""

from __future__ import annotations

import asyncio
import dataclasses
import math
import re
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime

import jwt
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from app.accounts import AccountStore
from app.avatars import path_of
from app.errors import (
    InvalidInput,
    LoginEnded,
    RefreshReused,
    StorageUnavailable,
    TooManyAttempts,
    Unauthorized,
    ValidationFailed,
)
from app.models import (
    LoginRequest,
    Profile,
    SignupRequest,
    StoredUser,
    TokenResponse,
    UserView,
)
from app.scripts import Rotated
from app.settings import Settings

TIMER_MULTIPLIERS = (1.0, 1.5, 2.0)
REFRESH_COOKIE = "refreshToken"
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")


@dataclass(frozen=True, slots=True)
class Identity:
    user_id: str
    token_id: str
    family: str
    expires_at: float
    timer_multiplier: float = 1.0


@dataclass(frozen=True, slots=True)
class Credentials:
    """What a game request carries to say who is calling."""

    authorization: str | None = None
    has_refresh_cookie: bool = False


@dataclass(frozen=True, slots=True)
class CookiePolicy:
    max_age: int
    secure: bool


@dataclass(frozen=True, slots=True)
class Issued:
    """What a successful login or refresh returns: the body and the new refresh cookie."""

    body: TokenResponse
    refresh_token: str


def normalize_email(email: str) -> str:
    return email.strip().lower()


def validate_signup(request: SignupRequest) -> tuple[str, str]:
    """(normalized email, trimmed name), or ValidationFailed listing every bad field."""
    email, name, password = normalize_email(request.email), request.name.strip(), request.password
    errors = []
    if not _EMAIL.match(email):
        errors.append(("email", "Enter a valid email address"))
    if not (
        len(password) >= 8
        and re.search(r"[a-z]", password)
        and re.search(r"[A-Z]", password)
        and re.search(r"\d", password)
    ):
        errors.append(
            (
                "password",
                "Password needs at least 8 characters with an uppercase letter, a lowercase "
                "letter and a digit",
            )
        )
    if not 2 <= len(name) <= 50:
        errors.append(("name", "Name must be 2 to 50 characters"))
    if errors:
        raise ValidationFailed(errors)
    return email, name


def user_view(user: StoredUser) -> UserView:
    return UserView(id=user.id, email=user.email, name=user.name)


def profile_of(user: StoredUser) -> Profile:
    # Half up, as the web client's Math.round would (Python's round() goes half to even).
    accuracy = (
        math.floor(100 * user.total_correct / user.total_questions + 0.5)
        if user.total_questions
        else 0
    )
    return Profile(
        name=user.name,
        email=user.email,
        total_xp=user.total_xp,
        total_gems=user.total_gems,
        games_played=user.games_played,
        best_score=user.best_score,
        overall_accuracy=accuracy,
        timer_multiplier=user.timer_multiplier,
        avatar_url=path_of(user),  # a path: the HTTP layer makes it absolute
    )


Sleep = Callable[[float], Awaitable[None]]


class Auth:
    """The account service: every account route calls one method here.

    `clock` (wall-clock seconds, for token times) and `sleep` (the login slow-down) are
    injected so tests need not wait in real time.
    """

    def __init__(
        self,
        accounts: AccountStore,
        settings: Settings,
        clock: Callable[[], float] = time.time,
        sleep: Sleep = asyncio.sleep,
    ) -> None:
        self.accounts = accounts
        self.settings = settings
        self.cookie = CookiePolicy(settings.refresh_token_seconds, settings.cookie_secure)
        self._clock = clock
        self._sleep = sleep
        self._hasher = PasswordHasher()  # argon2id with the library's current recommended cost
        self._dummy_hash: str | None = None  # made on first need, off the event loop

    # --- tokens ----------------------------------------------------------------------------------

    def _token(self, user_id: str, family: str, kind: str, lifetime: float) -> tuple[str, str]:
        token_id, now = uuid.uuid4().hex, int(self._clock())
        claims = {
            "sub": user_id,
            "jti": token_id,
            "fam": family,
            "typ": kind,
            "iat": now,
            "exp": now + int(lifetime),
        }
        return jwt.encode(claims, self.settings.jwt_secret, algorithm="HS256"), token_id

    def _claims(self, token: str, kind: str) -> dict[str, object]:
        try:
            claims: dict[str, object] = jwt.decode(
                token,
                self.settings.jwt_secret,
                algorithms=["HS256"],
                options={"require": ["sub", "jti", "fam", "typ", "exp"], "verify_exp": False},
            )
        except jwt.InvalidTokenError:
            raise Unauthorized("Invalid token: log in again") from None
        if claims["typ"] != kind:
            raise Unauthorized("Wrong kind of token: log in again")
        if not isinstance(claims["exp"], int | float) or claims["exp"] <= self._clock():
            raise Unauthorized("Token expired: refresh and retry")
        return claims

    # --- routes ----------------------------------------------------------------------------------

    async def signup(self, request: SignupRequest) -> StoredUser:
        email, name = validate_signup(request)
        password_hash = await asyncio.to_thread(self._hasher.hash, request.password)
        user = StoredUser(
            id=str(uuid.uuid4()),
            email=email,
            name=name,
            password_hash=password_hash,
            created_at=datetime.fromtimestamp(self._clock(), UTC),
        )
        await self.accounts.create_user(user)
        return user

    async def login(self, request: LoginRequest) -> Issued:
        email = normalize_email(request.email)
        failures, window_ms = await self.accounts.login_failures(email)
        if failures >= self.settings.login_max_failures:
            raise TooManyAttempts(max(1, math.ceil(window_ms / 1000)))
        user = await self.accounts.user_by_email(email)
        if not await self._password_matches(user, request.password):
            await self._failed_login(email)
        assert user is not None
        await self.accounts.clear_login_failures(email)
        family = uuid.uuid4().hex
        issued, refresh_id = self._new_pair(user, family)
        await self.accounts.start_family(family, refresh_id, self._refresh_ms)
        return issued

    async def _password_matches(self, user: StoredUser | None, password: str) -> bool:
        """Verify against the player's hash, or against a dummy one when the email is unknown,
        so both answers take the same time."""
        if user is not None:
            stored = user.password_hash
        else:
            if self._dummy_hash is None:
                self._dummy_hash = await asyncio.to_thread(self._hasher.hash, "not a password")
            stored = self._dummy_hash
        try:
            await asyncio.to_thread(self._hasher.verify, stored, password)
        except (VerificationError, InvalidHashError):
            return False
        return user is not None

    async def _failed_login(self, email: str) -> None:
        count = await self.accounts.record_login_failure(email, self.settings.login_lockout_seconds)
        beyond = count - self.settings.login_slow_after
        if beyond > 0:  # slow repeated failures down before refusing them outright
            await self._sleep(min(self.settings.login_slowdown_seconds * beyond, 5.0))
        raise Unauthorized("Wrong email or password")

    async def refresh(self, token: str | None) -> Issued:
        if not token:
            raise Unauthorized("Not logged in")
        claims = self._claims(token, "refresh")
        user_id, family = str(claims["sub"]), str(claims["fam"])
        user = _existing(await self.accounts.user(user_id))
        issued, refresh_id = self._new_pair(user, family)
        outcome = await self.accounts.rotate(
            family, str(claims["jti"]), refresh_id, self._refresh_ms
        )
        if outcome == Rotated.REUSED:
            raise RefreshReused()
        if outcome == Rotated.ENDED:
            raise LoginEnded()
        return issued

    async def logout(self, authorization: str | None) -> None:
        identity = await self.authenticate(authorization)
        ttl_ms = math.ceil((identity.expires_at - self._clock()) * 1000)
        await self.accounts.revoke(identity.family, identity.token_id, ttl_ms)

    async def profile(self, authorization: str | None) -> Profile:
        identity = await self.authenticate(authorization)
        return profile_of(_existing(await self.accounts.user(identity.user_id)))

    async def update_settings(self, identity: Identity, timer_multiplier: float) -> Profile:
        if timer_multiplier not in TIMER_MULTIPLIERS:
            raise InvalidInput("timerMultiplier must be one of 1.0, 1.5 or 2.0")
        user = await self.accounts.set_timer_multiplier(identity.user_id, timer_multiplier)
        return profile_of(_existing(user))

    @property
    def _refresh_ms(self) -> int:
        return int(self.settings.refresh_token_seconds * 1000)

    def _new_pair(self, user: StoredUser, family: str) -> tuple[Issued, str]:
        access, _ = self._token(user.id, family, "access", self.settings.access_token_seconds)
        refresh, refresh_id = self._token(
            user.id, family, "refresh", self.settings.refresh_token_seconds
        )
        return Issued(TokenResponse(access_token=access, user=user_view(user)), refresh), refresh_id

    # --- who is calling --------------------------------------------------------------------------

    async def authenticate(self, authorization: str | None) -> Identity:
        """The caller of a route that needs an account: a valid, unrevoked access token."""
        return await self._unrevoked(self._signed(authorization))

    def _signed(self, authorization: str | None) -> Identity:
        """The identity a Bearer access token claims, checked for signature and expiry only."""
        if not authorization or not authorization.lower().startswith("bearer "):
            raise Unauthorized("Log in first: send Authorization: Bearer <access token>")
        claims = self._claims(authorization[7:].strip(), "access")
        return Identity(
            str(claims["sub"]), str(claims["jti"]), str(claims["fam"]), float(str(claims["exp"]))
        )

    async def _unrevoked(self, identity: Identity) -> Identity:
        """The identity with its timer multiplier, unless its token or account is revoked."""
        revoked, multiplier = await self.accounts.access_state(identity.token_id, identity.user_id)
        if revoked:
            raise Unauthorized("Token revoked: log in again")
        return dataclasses.replace(identity, timer_multiplier=multiplier)

    async def player(self, credentials: Credentials) -> Identity | None:
        """The caller of a game route: a signed-in player, or None for an anonymous one.

        A request with the refresh cookie but no access token is a signed-in player whose
        client has not attached its token yet (the web client sends game calls with cookies
        only, and on a 401 refreshes once and retries with a Bearer token).

        While Redis is unreachable the revocation list cannot be read; a signed, unexpired
        access token is then accepted (it lives 15 minutes at most), so signed-in players keep
        playing fallback games like anonymous ones.
        """
        if credentials.authorization:
            identity = self._signed(credentials.authorization)
            try:
                return await self._unrevoked(identity)
            except StorageUnavailable:
                return identity
        if credentials.has_refresh_cookie:
            raise Unauthorized("Access token missing: refresh and retry with a Bearer token")
        return None


def _existing(user: StoredUser | None) -> StoredUser:
    """The player a valid token names; their account may have gone since it was issued."""
    if user is None:
        raise Unauthorized("Account not found: sign up again")
    return user
