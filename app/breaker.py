"""A circuit breaker for the Redis connection.

Thirty lines of our own instead of a library: the service needs only "open after N consecutive
failures, close when a background probe succeeds", with a callback on each transition for logs
and metrics; the asyncio breaker libraries probe by letting a live request through, which here
would make one player wait the full timeout after every cool-down.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal

State = Literal["closed", "open"]


class CircuitBreaker:
    def __init__(self, threshold: int, on_change: Callable[[State], None]) -> None:
        self.threshold = threshold
        self.state: State = "closed"
        self.failures = 0
        self._on_change = on_change

    @property
    def is_open(self) -> bool:
        return self.state == "open"

    def record_success(self) -> None:
        self.failures = 0

    def record_failure(self) -> None:
        self.failures += 1
        if self.failures >= self.threshold and self.state == "closed":
            self._move("open")

    def trip(self) -> None:
        """Open at once (Redis unreachable at start-up)."""
        self.failures = self.threshold
        if self.state == "closed":
            self._move("open")

    def close(self) -> None:
        """Called by the probe once Redis answers again."""
        self.failures = 0
        if self.state == "open":
            self._move("closed")

    def _move(self, state: State) -> None:
        self.state = state
        self._on_change(state)
