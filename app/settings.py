"""Typed settings read from the environment once, at start-up."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass


def _flag(value: str) -> bool:
    return value.strip().lower() in {"1", "true", "yes", "on"}


@dataclass(frozen=True, slots=True)
class Settings:
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

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if env is None else env
        default = cls()
        return cls(
            redis_url=env.get("REDIS_URL", default.redis_url),
            use_memory_sessions=_flag(env.get("USE_MEMORY_SESSIONS", "false")),
            session_ttl_seconds=float(env.get("SESSION_TTL_SECONDS", default.session_ttl_seconds)),
            questions_per_game=int(env.get("QUESTIONS_PER_GAME", default.questions_per_game)),
            question_seconds=float(env.get("QUESTION_SECONDS", default.question_seconds)),
            final_question_seconds=float(
                env.get("FINAL_QUESTION_SECONDS", default.final_question_seconds)
            ),
            redis_timeout_seconds=float(
                env.get("REDIS_TIMEOUT_SECONDS", default.redis_timeout_seconds)
            ),
            redis_max_connections=int(
                env.get("REDIS_MAX_CONNECTIONS", default.redis_max_connections)
            ),
            breaker_failures=int(env.get("BREAKER_FAILURES", default.breaker_failures)),
            breaker_probe_seconds=float(
                env.get("BREAKER_PROBE_SECONDS", default.breaker_probe_seconds)
            ),
            frontend_url=env.get("FRONTEND_URL", default.frontend_url),
        )
