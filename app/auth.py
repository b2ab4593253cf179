"""Sign-up, login, token rotation and revocation, and who is calling.

Access tokens: JWT HS256, `ACCESS_TOKEN_SECONDS` (15 min), sent as `Authorization: Bearer`.
Refresh tokens: JWT HS256, `REFRESH_TOKEN_SECONDS` (30 days), in an HttpOnly SameSite=Strict
cookie; each refresh rotates it, and presenting a used one revokes its whole family. Tokens
carry the id (`kid`) of the secret that signed them: `JWT_SECRET` signs, it and
`JWT_PREVIOUS_SECRETS` verify, so the signing secret can rotate without logging anyone out.
"""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import math
import re
import time
import unicodedata
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime

import jwt

from app.accounts import AccountStore
from app.avatars import path_of
from app.errors import (
    Busy,
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
from app.passwords import Passwords
from app.scripts import Rotated
from app.settings import Settings

TIMER_MULTIPLIERS = (1.0, 1.5, 2.0)
REFRESH_COOKIE = "refreshToken"
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
# Control, format (zero-width and direction marks), private-use, surrogate and separator
# characters: invisible or look-alike in an email address, never accepted there.
_INVISIBLE = {"Cc", "Cf", "Co", "Cs", "Zl", "Zp", "Zs"}
CLOCK_SKEW_SECONDS = 60  # how far in the future a token's iat may be, between instances
VERIFIED_TOKENS = 10_000  # tokens whose signature was checked, kept (about 4 MB at most)


@dataclass(frozen=True, slots=True)
class Identity:
    user_id: str
    token_id: str
    family: str
    expires_at: float
    timer_multiplier: float = 1.0


@dataclass(frozen=True, slots=True)
class Caller:
    """Who sends a request: the client's address (the balancer's X-Forwarded-For when the
    server trusts it, see README) and what the request carries to say who is calling."""

    address: str = ""
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
    """One spelling per address: NFKC (fullwidth letters become ASCII ones), trimmed, lower
    case. Invisible and control characters are refused, not removed (InvalidInput)."""
    email = unicodedata.normalize("NFKC", email).strip().lower()
    if any(unicodedata.category(c) in _INVISIBLE for c in email):
        raise InvalidInput("The email address contains invisible or control characters")
    return email


def validate_signup(request: SignupRequest) -> tuple[str, str]:
    """(normalized email, trimmed name), or ValidationFailed listing every bad field."""
    name, password = request.name.strip(), request.password
    try:
        email = normalize_email(request.email)
    except InvalidInput:
        email = ""  # refused below, with every other bad field
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
        self.passwords = Passwords(settings.password_hash_concurrency, settings.password_hash_queue)
        self._clock = clock
        self._sleep = sleep
        self._secrets = {_key_id(secret): secret for secret in settings.jwt_secrets}
        self._verified: dict[str, dict[str, object]] = {}  # token -> claims, oldest first
        self._signing_key_id = _key_id(settings.jwt_secret)

    def close(self) -> None:
        self.passwords.close()

    # --- tokens ----------------------------------------------------------------------------------

    def _token(self, user_id: str, family: str, kind: str, token_id: str | None = None) -> str:
        lifetime = self._lifetime(kind)
        now = int(self._clock())
        claims = {
            "sub": user_id,
            "jti": token_id or uuid.uuid4().hex,
            "fam": family,
            "typ": kind,
            "iat": now,
            "exp": now + lifetime,
        }
        secret, key_id = self._secrets[self._signing_key_id], self._signing_key_id
        return jwt.encode(claims, secret, algorithm="HS256", headers={"kid": key_id})

    def _lifetime(self, kind: str) -> int:
        if kind == "access":
            return self.settings.access_token_seconds
        return self.settings.refresh_token_seconds

    def _claims(self, token: str, kind: str) -> dict[str, object]:
        """The claims of a token signed by a known secret, of this kind, live now, and no longer
        lived than its kind allows (a forged `exp: 1e300` is refused, not trusted)."""
        claims = self._verified.get(token)
        if claims is None:
            claims = self._verify(token)
        if claims["typ"] != kind:
            raise Unauthorized("Wrong kind of token: log in again")
        issued, expires, now = claims["iat"], claims["exp"], self._clock()
        if not isinstance(issued, int) or not isinstance(expires, int):
            raise Unauthorized("Invalid token: log in again")
        if issued > now + CLOCK_SKEW_SECONDS or expires - issued > self._lifetime(kind):
            raise Unauthorized("Invalid token: log in again")
        if expires <= now:
            raise Unauthorized("Token expired: refresh and retry")
        return claims

    def _verify(self, token: str) -> dict[str, object]:
        """Check a token's signature, once: PyJWT takes about 70 µs a token, most of a signed-in
        request's CPU, and a string that verified once always will (the secrets are fixed for the
        life of the process). Expiry and the rest are checked on every use by `_claims`; the
        cache holds the most recent VERIFIED_TOKENS tokens."""
        try:
            secret = self._secrets.get(str(jwt.get_unverified_header(token).get("kid")))
            if secret is None:
                raise jwt.InvalidTokenError("signed with an unknown or removed secret")
            claims: dict[str, object] = jwt.decode(
                token,
                secret,
                algorithms=["HS256"],
                options={
                    "require": ["sub", "jti", "fam", "typ", "iat", "exp"],
                    "verify_exp": False,
                    "verify_iat": False,
                },
            )
        except jwt.InvalidTokenError:
            raise Unauthorized("Invalid token: log in again") from None
        if len(self._verified) >= VERIFIED_TOKENS:
            self._verified.pop(next(iter(self._verified)))  # the oldest
        self._verified[token] = claims
        return claims

    # --- routes ----------------------------------------------------------------------------------

    async def signup(self, request: SignupRequest, caller: Caller) -> StoredUser:
        email, name = validate_signup(request)
        await self._use(caller, "signup", self.settings.signups_per_client, "Too many sign-ups")
        password_hash = await self.passwords.hash(request.password)
        user = StoredUser(
            id=str(uuid.uuid4()),
            email=email,
            name=name,
            password_hash=password_hash,
            created_at=datetime.fromtimestamp(self._clock(), UTC),
        )
        await self.accounts.create_user(user)
        return user

    async def login(self, request: LoginRequest, caller: Caller) -> Issued:
        """Each attempt is counted before its password is checked, per client and email, per
        email and per client, so concurrency cannot buy more guesses than the limits allow."""
        email = normalize_email(request.email)
        attempts = await self._claim_login(email, caller)
        user = await self.accounts.user_by_email(email)
        try:
            matches = await self.passwords.verify(
                user.password_hash if user else None, request.password
            )
        except Busy:  # no password was checked: the attempt is given back, so a player who
            await asyncio.gather(  # retries through a flood is not locked out by the retries
                self.accounts.release_login(email, caller.address),
                self.accounts.use(caller.address, "login", 1, self._window_ms, amount=-1),
            )
            raise
        if not matches or user is None:
            beyond = attempts - self.settings.login_slow_after
            if beyond > 0:  # slow repeated failures down before refusing them outright
                await self._sleep(min(self.settings.login_slowdown_seconds * beyond, 5.0))
            raise Unauthorized("Wrong email or password")
        await asyncio.gather(  # a success clears the email's count and gives the client's back
            self.accounts.clear_login(email),
            self.accounts.use(caller.address, "login", 1, self._window_ms, amount=-1),
        )
        family = uuid.uuid4().hex
        issued, refresh_id = self._new_pair(user, family)
        await self.accounts.start_family(family, refresh_id, self._refresh_ms)
        return issued

    async def _claim_login(self, email: str, caller: Caller) -> int:
        """Claim one attempt; the attempts of this client for this email so far."""
        limits = self.settings
        await self._use(caller, "login", limits.login_max_failures_per_client, "Too many logins")
        claimed, attempts = await self.accounts.claim_login(
            email,
            caller.address,
            limits.login_max_failures,
            limits.login_max_failures_per_email,
            self._window_ms,
        )
        if not claimed:
            await self.accounts.use(caller.address, "login", 1, self._window_ms, amount=-1)
            raise TooManyAttempts(
                "Too many failed logins for this email", max(1, math.ceil(attempts / 1000))
            )
        return attempts

    async def _use(self, caller: Caller, action: str, limit: int, refusal: str) -> None:
        """Count one use of a per-client limit (0: none), or refuse with 429."""
        if limit == 0:
            return
        window_ms = self._window_ms if action == "login" else self._rate_window_ms
        claimed, value = await self.accounts.use(caller.address, action, limit, window_ms)
        if not claimed:
            raise TooManyAttempts(f"{refusal} from this address", max(1, math.ceil(value / 1000)))

    async def refresh(self, token: str | None) -> Issued:
        if not token:
            raise Unauthorized("Not logged in")
        claims = self._claims(token, "refresh")
        user_id, family = str(claims["sub"]), str(claims["fam"])
        user = _existing(await self.accounts.user(user_id))
        new_id = uuid.uuid4().hex
        outcome, live_id = await self.accounts.rotate(
            family,
            str(claims["jti"]),
            new_id,
            self._refresh_ms,
            int(self._clock() * 1000),
            int(self.settings.refresh_reuse_grace_seconds * 1000),
        )
        if outcome == Rotated.REUSED:
            raise RefreshReused()
        if outcome == Rotated.ENDED:
            raise LoginEnded()
        # Rotated, or the same token again within the grace window (two refreshes sent at once):
        # either way the live token of the family, so both answers set an equivalent cookie.
        issued, _ = self._new_pair(user, family, refresh_id=live_id)
        return issued

    async def logout(self, authorization: str | None) -> None:
        identity = await self.authenticate(authorization)
        await self.accounts.end_family(identity.family)

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

    @property
    def _window_ms(self) -> int:
        return self.settings.login_lockout_seconds * 1000

    @property
    def _rate_window_ms(self) -> int:
        return self.settings.rate_limit_window_seconds * 1000

    def _new_pair(
        self, user: StoredUser, family: str, refresh_id: str | None = None
    ) -> tuple[Issued, str]:
        refresh_id = refresh_id or uuid.uuid4().hex
        access = self._token(user.id, family, "access")
        refresh = self._token(user.id, family, "refresh", refresh_id)
        return Issued(TokenResponse(access_token=access, user=user_view(user)), refresh), refresh_id

    # --- who is calling --------------------------------------------------------------------------

    async def authenticate(self, authorization: str | None) -> Identity:
        """The caller of a route that needs an account: a valid access token of a live login."""
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
        """The identity with its timer multiplier, unless its login has ended (logout, or a
        reused refresh token revoked the family) or the account is gone."""
        revoked, multiplier = await self.accounts.access_state(identity.family, identity.user_id)
        if revoked:
            raise Unauthorized("Token revoked: log in again")
        if multiplier == identity.timer_multiplier:  # most players keep the default: no copy
            return identity
        return dataclasses.replace(identity, timer_multiplier=multiplier)

    async def player(self, caller: Caller) -> Identity | None:
        """The caller of a game route: a signed-in player, or None for an anonymous one.

        A request with the refresh cookie but no access token is a signed-in player whose
        client has not attached its token yet (the web client sends game calls with cookies
        only, and on a 401 refreshes once and retries with a Bearer token).

        While Redis is unreachable the revocation state cannot be read; a signed, unexpired
        access token is then accepted (it lives 15 minutes at most), so signed-in players keep
        playing fallback games like anonymous ones.
        """
        if caller.authorization:
            identity = self._signed(caller.authorization)
            try:
                return await self._unrevoked(identity)
            except StorageUnavailable:
                return identity
        if caller.has_refresh_cookie:
            raise Unauthorized("Access token missing: refresh and retry with a Bearer token")
        return None


def _key_id(secret: str) -> str:
    """A short public id of a secret (the JWT `kid`): says which secret signed a token."""
    return hashlib.sha256(b"civic-trivia-jwt-key:" + secret.encode()).hexdigest()[:12]


def _existing(user: StoredUser | None) -> StoredUser:
    """The player a valid token names; their account may have gone since it was issued."""
    if user is None:
        raise Unauthorized("Account not found: sign up again")
    return user
