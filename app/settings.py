"""Typed settings, converted from the environment once at start-up.

Each field is read from the variable of the same name in upper case (`redis_url` from
`REDIS_URL`); the README's settings table and `.env.example` list them all (a test checks that
the three agree). A value of the wrong type or out of bounds stops start-up with one line that
names the variable and what it accepts.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from typing import Annotated, Literal

import msgspec
from msgspec import Meta

Seconds = Annotated[float, Meta(gt=0, le=24 * 3600)]
Count = Annotated[int, Meta(ge=1, le=1_000_000)]
Limit = Annotated[int, Meta(ge=0, le=1_000_000)]  # 0: no limit


# Secrets that were published with this project at some point: never accepted.
KNOWN_SECRETS = frozenset({"development-only-secret-do-not-use-in-production"})


class SettingsError(ValueError):
    """A setting the service cannot run with; the message names the variable."""


class Settings(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    environment: Literal["development", "production"] = "development"
    redis_url: Annotated[str, Meta(pattern=r"^(redis|rediss|unix)://")] = "redis://127.0.0.1:6379/0"
    redis_ca_file: str = ""
    redis_cert_file: str = ""
    redis_key_file: str = ""
    redis_cluster: bool = False
    use_memory_sessions: bool = False
    session_ttl_seconds: Seconds = 3600
    questions_per_game: Annotated[int, Meta(ge=1, le=20)] = 10
    question_seconds: Annotated[float, Meta(gt=0, le=600)] = 25
    final_question_seconds: Annotated[float, Meta(gt=0, le=600)] = 50
    redis_timeout_seconds: Annotated[float, Meta(gt=0, le=30)] = 0.25
    redis_max_connections: Annotated[int, Meta(ge=1, le=10_000)] = 64
    breaker_failures: Annotated[int, Meta(ge=1, le=1000)] = 3
    breaker_probe_seconds: Annotated[float, Meta(gt=0, le=60)] = 1.0
    fallback_max_sessions: Count = 10_000
    frontend_url: str = "http://localhost:5173"
    # Where players reach the service, for absolute URLs in replies (avatarUrl); empty: the
    # request's own scheme and host.
    public_base_url: Annotated[str, Meta(pattern=r"^(https?://[^/?#]+(/[^?#]*)?)?$")] = ""
    jwt_secret: str = ""  # required: ./serve makes one; there is no default to forge with
    jwt_previous_secrets: str = ""  # comma-separated: still verify, never sign (rotation)
    access_token_seconds: Count = 15 * 60
    refresh_token_seconds: Count = 30 * 24 * 3600
    cookie_secure: bool = False
    refresh_reuse_grace_seconds: Annotated[float, Meta(ge=0, le=60)] = 5
    login_slow_after: Count = 3
    login_max_failures: Count = 5
    login_max_failures_per_email: Count = 50
    login_max_failures_per_client: Count = 20
    login_lockout_seconds: Count = 15 * 60
    login_slowdown_seconds: Annotated[float, Meta(ge=0, le=5)] = 1.0
    rate_limit_window_seconds: Count = 60
    creates_per_client: Limit = 120
    signups_per_client: Limit = 10
    password_hash_concurrency: Annotated[int, Meta(ge=1, le=64)] = 1
    password_hash_queue: Annotated[int, Meta(ge=0, le=10_000)] = 32
    metrics_token: str = ""
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

    @property
    def jwt_secrets(self) -> list[str]:
        """The signing secret first, then the previous ones (they verify, never sign)."""
        previous = [s.strip() for s in self.jwt_previous_secrets.split(",") if s.strip()]
        return [self.jwt_secret, *previous]

    def check(self) -> None:
        """Refuse to run with a secret anyone could know, with TLS files that would be ignored
        or cannot be read, or in production without HTTPS cookies."""
        self._check_tls_files()
        secrets = self.jwt_secrets
        names = ["JWT_SECRET"] + ["JWT_PREVIOUS_SECRETS"] * (len(secrets) - 1)
        for name, secret in zip(names, secrets, strict=True):
            if len(secret.encode()) < 32 or secret in KNOWN_SECRETS:
                raise SettingsError(
                    f"{name}: needs a random secret of 32+ bytes (./serve makes one in "
                    ".data/jwt-secret; elsewhere e.g. python -c "
                    "'import secrets; print(secrets.token_urlsafe(48))')"
                )
        if self.environment == "production" and not self.cookie_secure:
            raise SettingsError("COOKIE_SECURE: ENVIRONMENT=production needs true (HTTPS)")

    def _check_tls_files(self) -> None:
        files = {
            "REDIS_CA_FILE": self.redis_ca_file,
            "REDIS_CERT_FILE": self.redis_cert_file,
            "REDIS_KEY_FILE": self.redis_key_file,
        }
        for name, path in files.items():
            if path and not self.redis_url.startswith("rediss://"):
                raise SettingsError(f"{name}: needs a rediss:// REDIS_URL (TLS), or leave it empty")
            if path and not os.path.isfile(path):
                raise SettingsError(f"{name}={path!r}: no such file")


def _explain(error: msgspec.ValidationError, values: Mapping[str, str]) -> str:
    """`NAME='value': expected ...` for the setting msgspec refused (its path is `$.name`)."""
    name = str(error).rsplit("$.", 1)[-1].rstrip("`")
    fields = {f.name: f.type for f in msgspec.inspect.type_info(Settings).fields}  # type: ignore[attr-defined]
    shown = values.get(name, "")
    if name == "redis_url":  # it may carry the Redis password: never print that
        shown = re.sub(r"^([a-z]+://)?[^@/]*@", r"\1***@", shown)
    return f"{name.upper()}={shown!r}: expected {_accepts(fields[name])}"


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
