"""Typed settings, read from the environment once at start-up.

Each field is read from the variable of the same name in upper case (`redis_url` from
`REDIS_URL`); the README's settings table lists them all.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from dataclasses import dataclass

DEV_JWT_SECRET = "development-only-secret-do-not-use-in-production"


def _parse(kind: object, raw: str) -> object:
    if kind == "bool":
        return raw.strip().lower() in {"1", "true", "yes", "on"}
    if kind == "int":
        return int(raw)
    if kind == "float":
        return float(raw)
    return raw


@dataclass(frozen=True, slots=True)
class Settings:
    environment: str = "development"  # "production" refuses unsafe defaults
    redis_url: str = "redis://127.0.0.1:6379/0"
    use_memory_sessions: bool = False
    session_ttl_seconds: float = 3600
    questions_per_game: int = 10
    question_seconds: float = 25
    final_question_seconds: float = 50
    redis_timeout_seconds: float = 0.25
    redis_max_connections: int = 64
    breaker_failures: int = 3
    breaker_probe_seconds: float = 1.0
    frontend_url: str = "http://localhost:5173"
    jwt_secret: str = DEV_JWT_SECRET
    access_token_seconds: int = 15 * 60
    refresh_token_seconds: int = 30 * 24 * 3600
    cookie_secure: bool = False
    login_slow_after: int = 3
    login_max_failures: int = 5
    login_lockout_seconds: int = 15 * 60
    login_slowdown_seconds: float = 1.0
    log_level: str = "info"

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if env is None else env
        values = {
            field.name: _parse(field.type, env[field.name.upper()])
            for field in dataclasses.fields(cls)
            if field.name.upper() in env
        }
        return cls(**values)  # type: ignore[arg-type]

    def check(self) -> None:
        """Refuse to run in production with settings that are only safe on a laptop."""
        if self.environment == "production":
            if self.jwt_secret == DEV_JWT_SECRET or len(self.jwt_secret) < 32:
                raise RuntimeError(
                    "ENVIRONMENT=production needs JWT_SECRET: a random secret of 32+ characters"
                )
            if not self.cookie_secure:
                raise RuntimeError("ENVIRONMENT=production needs COOKIE_SECURE=true (HTTPS)")
