"""Password hashing (argon2id) off the event loop, with a bound on the work it may queue.

Each hash takes tens of milliseconds of CPU. Unbounded, a flood of logins with random emails
queued that work in front of real players (one login took 17.8 s instead of 0.12 s). Here at
most `concurrency` hashes run at once on a pool of their own and at most `queue` more wait;
beyond that a request is refused at once with Busy (503, Retry-After), so a real player's login
waits at most the queue's length, never the flood's. Per-client limits (app/auth.py) refuse
most of a flood before it gets here.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from app.errors import Busy

T = TypeVar("T")


class Passwords:
    def __init__(self, concurrency: int, queue: int) -> None:
        self._hasher = PasswordHasher()  # argon2id with the library's current recommended cost
        self._pool = ThreadPoolExecutor(concurrency, thread_name_prefix="argon2")
        self._admitted, self._limit = 0, concurrency + queue
        self._dummy: str | None = None  # made on first need

    async def hash(self, password: str) -> str:
        return await self._run(self._hasher.hash, password)

    async def verify(self, stored: str | None, password: str) -> bool:
        """Whether `password` matches the stored hash. With no hash (an unknown email) it is
        checked against a dummy one, so both answers take the same time."""
        if stored is None:
            if self._dummy is None:
                self._dummy = await self._run(self._hasher.hash, "not anyone's password")
            await self._run(self._matches, self._dummy, password)
            return False
        return await self._run(self._matches, stored, password)

    def _matches(self, stored: str, password: str) -> bool:
        try:
            return self._hasher.verify(stored, password)
        except (VerificationError, InvalidHashError):
            return False

    async def _run(self, work: Callable[..., T], *args: str) -> T:
        if self._admitted >= self._limit:
            raise Busy()
        self._admitted += 1
        try:
            return await asyncio.get_running_loop().run_in_executor(self._pool, work, *args)
        finally:
            self._admitted -= 1

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
