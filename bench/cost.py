"""What a measured window cost in CPU: the server's processes, Redis, and the load generator.

Throughput depends on everything else running on the machine (here two cores shared by the load
generator, the server and Redis); the CPU time one request costs the server or Redis depends on
it much less, so these are the figures to compare across variants and runs.
"""

from __future__ import annotations

import contextlib
import os
import time
from dataclasses import dataclass
from pathlib import Path

import redis

TICKS = os.sysconf("SC_CLK_TCK")
CORES = os.cpu_count() or 1


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far."""
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS


def rss_mb(pid: int) -> float:
    """Resident memory of a process now."""
    with open(f"/proc/{pid}/status") as status:
        kb = next(line.split()[1] for line in status if line.startswith("VmRSS:"))
    return int(kb) / 1024


def with_descendants(pid: int) -> list[int]:
    """The process and all its children, theirs, and so on (a server's master and workers)."""
    children = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        children += [int(c) for c in (task / "children").read_text().split()]
    return [pid] + [p for child in children for p in with_descendants(child)]


def tree_cpu_seconds(pids: list[int]) -> float:
    """CPU time of these processes and their descendants alive now (a process that exits in
    between is not counted: a server's workers live as long as the server)."""
    total = 0.0
    for pid in (p for root in pids for p in with_descendants(root)):
        with contextlib.suppress(FileNotFoundError):  # it exited since it was listed
            total += cpu_seconds(pid)
    return total


def redis_cpu_seconds(client: redis.Redis) -> float:
    """Redis's own account of its CPU time (INFO cpu): it may run on another machine."""
    info = client.info("cpu")
    return float(info["used_cpu_user"]) + float(info["used_cpu_sys"])


@dataclass(frozen=True)
class Reading:
    at: float  # monotonic seconds
    own: float  # this process's CPU seconds: the load generator
    server: float | None  # the server's processes, if their pids are known
    redis: float | None  # Redis, if it is known


@dataclass(frozen=True)
class Cost:
    """The difference between two readings."""

    wall: float
    own: float
    server: float | None
    redis: float | None

    def per_request_us(self, requests: int) -> tuple[float | None, float | None]:
        """(server, Redis) CPU microseconds per request."""
        n = max(requests, 1)
        return (
            None if self.server is None else self.server / n * 1e6,
            None if self.redis is None else self.redis / n * 1e6,
        )

    @property
    def own_share(self) -> float:
        """The load generator's CPU over wall time: 1.0 is one core busy."""
        return self.own / self.wall if self.wall else 0.0


class CpuMeter:
    """Reads the CPU time of the server's processes (with their descendants), of Redis and of
    this process; `cost(start)` is what was spent since a reading."""

    def __init__(self, server_pids: list[int], redis_url: str | None) -> None:
        self.server_pids = server_pids
        self.redis = redis.Redis.from_url(redis_url) if redis_url else None

    def read(self) -> Reading:
        return Reading(
            at=time.monotonic(),
            own=time.process_time(),
            server=tree_cpu_seconds(self.server_pids) if self.server_pids else None,
            redis=redis_cpu_seconds(self.redis) if self.redis is not None else None,
        )

    def cost(self, start: Reading) -> Cost:
        end = self.read()

        def spent(a: float | None, b: float | None) -> float | None:
            return None if a is None or b is None else b - a

        return Cost(
            end.at - start.at,
            end.own - start.own,
            spent(start.server, end.server),
            spent(start.redis, end.redis),
        )

    def close(self) -> None:
        if self.redis is not None:
            self.redis.close()
