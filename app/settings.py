"""Typed settings, converted from the environment once at start-up.

Each field is read from the variable of the same name in upper case (`redis_url` from
`REDIS_URL`); the README's settings table and `.env.example` list them all (a test checks that
the three agree). A value of the wrong type or out of bounds stops start-up with one line that
names the variable and what it accepts.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Annotated, Literal

import msgspec
from msgspec import Meta

DEV_JWT_SECRET = "development-only-secret-do-not-use-in-production"

Seconds = Annotated[float, Meta(gt=0, le=24 * 3600)]
Count = Annotated[int, Meta(ge=1, le=1_000_000)]


class SettingsError(ValueError):
    """A setting the service cannot run with; the message names the variable."""


class Settings(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    environment: Literal["development", "production"] = "development"
    redis_url: Annotated[str, Meta(pattern=r"^(redis|rediss|unix)://")] = "redis://127.0.0.1:6379/0"
    use_memory_sessions: bool = False
    session_ttl_seconds: Seconds = 3600
    questions_per_game: Annotated[int, Meta(ge=1, le=20)] = 10
    question_seconds: Annotated[float, Meta(gt=0, le=600)] = 25
    final_question_seconds: Annotated[float, Meta(gt=0, le=600)] = 50
    redis_timeout_seconds: Annotated[float, Meta(gt=0, le=30)] = 0.25
    redis_max_connections: Annotated[int, Meta(ge=1, le=10_000)] = 64
    breaker_failures: Annotated[int, Meta(ge=1, le=1000)] = 3
    breaker_probe_seconds: Annotated[float, Meta(gt=0, le=60)] = 1.0
    frontend_url: str = "http://localhost:5173"
    # Where players reach the service, for absolute URLs in replies (avatarUrl); empty: the
    # request's own scheme and host.
    public_base_url: Annotated[str, Meta(pattern=r"^(https?://[^/?#]+(/[^?#]*)?)?$")] = ""
    jwt_secret: Annotated[str, Meta(min_length=1)] = DEV_JWT_SECRET
    access_token_seconds: Count = 15 * 60
    refresh_token_seconds: Count = 30 * 24 * 3600
    cookie_secure: bool = False
    login_slow_after: Count = 3
    login_max_failures: Count = 5
    login_lockout_seconds: Count = 15 * 60
    login_slowdown_seconds: Annotated[float, Meta(ge=0, le=5)] = 1.0
    log_level: Literal["critical", "error", "warning", "info", "debug"] = "info"

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if env is None else env
        values = {name: env[name.upper()] for name in cls.__struct_fields__ if name.upper() in env}
        try:
            settings = msgspec.convert(values, cls, strict=False)
        except msgspec.ValidationError as exc:
            raise SettingsError(_explain(exc, values)) from None
        settings.check()
        return settings

    def check(self) -> None:
        """Refuse to run in production with settings that are only safe on a laptop."""
        if self.environment == "production":
            if self.jwt_secret == DEV_JWT_SECRET or len(self.jwt_secret) < 32:
                raise SettingsError(
                    "JWT_SECRET: ENVIRONMENT=production needs a random secret of 32+ characters"
                )
            if not self.cookie_secure:
                raise SettingsError("COOKIE_SECURE: ENVIRONMENT=production needs true (HTTPS)")


def _explain(error: msgspec.ValidationError, values: Mapping[str, str]) -> str:
    """`NAME='value': expected ...` for the setting msgspec refused (its path is `$.name`)."""
    name = str(error).rsplit("$.", 1)[-1].rstrip("`")
    fields = {f.name: f.type for f in msgspec.inspect.type_info(Settings).fields}  # type: ignore[attr-defined]
    return f"{name.upper()}={values.get(name, '')!r}: expected {_accepts(fields[name])}"


def _accepts(kind: msgspec.inspect.Type) -> str:
    if isinstance(kind, msgspec.inspect.BoolType):
        return "true or false"
    if isinstance(kind, msgspec.inspect.LiteralType):
        return "one of " + ", ".join(map(str, kind.values))
    if isinstance(kind, msgspec.inspect.StrType):
        return f"text matching {kind.pattern}" if kind.pattern else "non-empty text"
    number = "a whole number" if isinstance(kind, msgspec.inspect.IntType) else "a number"
    assert isinstance(kind, msgspec.inspect.IntType | msgspec.inspect.FloatType)
    bounds = [
        f"{sign} {value:g}"
        for sign, value in ((">", kind.gt), (">=", kind.ge), ("<", kind.lt), ("<=", kind.le))
        if value is not None
    ]
    return " ".join([number, " and ".join(bounds)]).strip()
