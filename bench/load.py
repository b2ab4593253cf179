"""Players that play complete games against a server, and what the run cost.

`run_games` is the load generator: N players play whole games (create, ten answers with a
wager on the final, results) for a while; some players send all answers of a game at once.
Afterwards every finished game is read back and compared with what the server acknowledged.
"""

from __future__ import annotations

import asyncio
import random
import statistics
import time
import uuid
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from typing import Any

import msgspec
import redis

from bench.client import Connection
from bench.cost import CORES, Cost, CpuMeter

_encode = msgspec.json.Encoder().encode
_decode = msgspec.json.decode


@dataclass
class Stats:
    latencies: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    statuses: Counter[tuple[str, int]] = field(default_factory=Counter)
    # (sessionId, questionId) -> totalPoints the server acknowledged
    acknowledged: dict[tuple[str, str], int] = field(default_factory=dict)
    finished: set[str] = field(default_factory=set)
    owners: dict[str, str] = field(default_factory=dict)  # sessionId -> the player's token

    @property
    def requests(self) -> int:
        return sum(self.statuses.values())

    def errors(self) -> dict[str, int]:
        return {
            f"{route} {status}": n for (route, status), n in self.statuses.items() if status >= 400
        }

    async def call(
        self,
        conn: Connection,
        route: str,
        method: str,
        path: str,
        body: Any = None,
        token: str | None = None,
    ) -> tuple[int, Any]:
        payload = b"" if body is None else _encode(body)
        started = time.perf_counter()
        status, raw = await conn.request(method, path, payload, token)
        self.latencies[route].append(time.perf_counter() - started)
        self.statuses[(route, status)] += 1
        return status, (_decode(raw) if raw else None)


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else 0.0


def answer_body(sid: str, qid: str, wager: int | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {
        "sessionId": sid,
        "questionId": qid,
        "selectedOption": random.randrange(4),
        "timeRemaining": round(random.uniform(1, 24), 2),
    }
    if wager is not None:
        body["wager"] = wager
    return body


async def play_one_game(conns: list[Connection], stats: Stats, burst: bool) -> None:
    status, game = await stats.call(conns[0], "create", "POST", "/api/game/session", {})
    if status != 201:
        return
    sid, ids = game["sessionId"], [q["id"] for q in game["questions"]]
    if conns[0].token:
        stats.owners[sid] = conns[0].token

    async def send(conn: Connection, qid: str, wager: int | None) -> int:
        status, result = await stats.call(
            conn, "answer", "POST", "/api/game/answer", answer_body(sid, qid, wager)
        )
        if status == 200:
            stats.acknowledged[(sid, qid)] = result["totalPoints"]
            return int(result["totalPoints"])
        return 0

    if burst:  # all answers of the game at once: the final's wager must be safe at any order
        await asyncio.gather(
            *(send(conns[i], qid, 0 if i == len(ids) - 1 else None) for i, qid in enumerate(ids))
        )
    else:
        score = 0
        for i, qid in enumerate(ids):
            final = i == len(ids) - 1
            score += await send(conns[0], qid, random.randint(0, score // 2) if final else None)
    status, _ = await stats.call(conns[0], "results", "GET", f"/api/game/results/{sid}")
    if status == 200:
        stats.finished.add(sid)


async def player(
    url: str, token: str | None, stats: Stats, deadline: float, games: list[int], burst: bool
) -> None:
    conns = [Connection(url, token) for _ in range(10 if burst else 1)]
    try:
        while time.perf_counter() < deadline and games[0] > 0:
            games[0] -= 1
            await play_one_game(conns, stats, burst)
    finally:
        for conn in conns:
            await conn.close()


async def check_integrity(url: str, stats: Stats) -> dict[str, int]:
    """Read every finished game back: acknowledged answers missing, changed or doubled."""
    by_game: dict[str, dict[str, int]] = defaultdict(dict)
    for (sid, qid), points in stats.acknowledged.items():
        by_game[sid][qid] = points
    missing = changed = doubled = 0
    conn = Connection(url)
    for sid in by_game:  # a signed-in player's games are theirs to read: with their token
        status, raw = await conn.request(
            "GET", f"/api/game/results/{sid}", b"", stats.owners.get(sid)
        )
        stored = _decode(raw)["answers"] if status == 200 else []
        seen = Counter(a["questionId"] for a in stored)
        doubled += sum(n - 1 for n in seen.values())
        stored_points = {a["questionId"]: a["totalPoints"] for a in stored}
        for qid, acknowledged_points in by_game[sid].items():
            if qid not in stored_points:
                missing += 1
            elif stored_points[qid] != acknowledged_points:
                changed += 1
    await conn.close()
    return {
        "games": len(by_game),
        "answers": len(stats.acknowledged),
        "missing": missing,
        "changed": changed,
        "doubled": doubled,
    }


class RedisCost:
    """Commands the server sent to Redis, from INFO commandstats deltas.

    Commands that Lua scripts run inside an EVALSHA are counted by Redis too; for a variant that
    calls scripts, data commands are reported as run inside them, and only EVAL/EVALSHA count as
    commands sent per request (true of the service's anonymous routes and of the floor).
    """

    SCRIPT_CALLS = ("cmdstat_evalsha", "cmdstat_eval", "cmdstat_evalsha_ro", "cmdstat_eval_ro")
    OWN = (
        "cmdstat_info",
        "cmdstat_memory|usage",
        "cmdstat_scan",
        "cmdstat_ping",
        "cmdstat_client|setinfo",
        "cmdstat_hello",
        "cmdstat_script|load",
    )

    def __init__(self, url: str) -> None:
        self.client = redis.Redis.from_url(url)
        self.before = self._calls()

    def _calls(self) -> dict[str, int]:
        return {k: v["calls"] for k, v in self.client.info("commandstats").items()}

    def per_request(self, requests: int) -> tuple[float, dict[str, float]]:
        after = self._calls()
        delta = {
            k: after[k] - self.before.get(k, 0)
            for k in after
            if k not in self.OWN and after[k] != self.before.get(k, 0)
        }
        self.before = after
        n = max(requests, 1)
        scripts = sum(delta.get(k, 0) for k in self.SCRIPT_CALLS)
        sent = scripts if scripts else sum(delta.values())
        detail = {k.removeprefix("cmdstat_"): round(v / n, 2) for k, v in sorted(delta.items())}
        return sent / n, detail

    def memory_per_session(self, session_ids: list[str]) -> float:
        sample = session_ids[:200]
        usages = [self.client.memory_usage(f"session:{sid}") or 0 for sid in sample]
        return statistics.mean(usages) if usages else 0.0


@dataclass(frozen=True)
class Workload:
    """What the players do: complete games for `duration` seconds (or `max_games`), a share of
    them (`burst`) sending a game's answers at once; signed in or anonymous."""

    players: int
    duration: float
    signed_in: bool = False
    burst: float = 0.2
    max_games: int = 1_000_000


async def sign_in(url: str, players: int) -> list[str]:
    """Sign up and log in `players` new accounts, once each; their access tokens. Password
    hashing makes this slow on purpose: it happens before any measured window, a few players
    at a time (the service refuses hashes beyond a short queue)."""
    run = uuid.uuid4().hex[:8]
    few = asyncio.Semaphore(8)

    async def one(i: int) -> str:
        async with few:
            return await sign_in_one(url, f"bench-{run}-{i}@example.com", f"Player {i}")

    return list(await asyncio.gather(*(one(i) for i in range(players))))


async def sign_in_one(url: str, email: str, name: str) -> str:
    conn = Connection(url)
    account = {"email": email, "password": "Bench-pass-1"}
    for path, body, expected in (
        ("/auth/signup", {**account, "name": name}, 201),
        ("/auth/login", account, 200),
    ):
        status, raw = await conn.request("POST", path, _encode(body))
        if status != expected:
            raise RuntimeError(f"{path}: {status} {raw[:200]!r}")
    await conn.close()
    token: str = _decode(raw)["accessToken"]
    return token


async def play(
    url: str, workload: Workload, tokens: list[str] | None, meter: CpuMeter
) -> tuple[Stats, Cost]:
    """Each player plays games (with its token, if given) until the time is up; what the
    window from the first request to the last reply cost."""
    stats = Stats()
    games = [workload.max_games]
    bursts = round(workload.players * workload.burst)
    players: list[str | None] = [*tokens] if tokens else [None] * workload.players
    start = meter.read()
    deadline = time.perf_counter() + workload.duration
    await asyncio.gather(
        *(player(url, token, stats, deadline, games, i < bursts) for i, token in enumerate(players))
    )
    return stats, meter.cost(start)


def report(stats: Stats, cost: Cost) -> list[str]:
    elapsed, games, requests = cost.wall, len(stats.finished), stats.requests
    lines = [
        f"games: {games} in {elapsed:.1f} s = {games / elapsed:.1f} games/s",
        f"requests: {requests} = {requests / elapsed:.0f} req/s",
        "route     count     p50 ms   p95 ms   p99 ms",
    ]
    for route in ("create", "answer", "results"):
        values = stats.latencies.get(route, [])
        lines.append(
            f"{route:<9} {len(values):>6} {percentile(values, 0.5) * 1000:>9.2f}"
            f" {percentile(values, 0.95) * 1000:>8.2f} {percentile(values, 0.99) * 1000:>8.2f}"
        )
    lines.append(f"errors by status: {stats.errors() or 'none'}")
    server_us, redis_us = cost.per_request_us(requests)
    if server_us is not None:
        lines.append(f"server CPU per request: {server_us:.0f} µs")
    if redis_us is not None:
        lines.append(f"Redis CPU per request: {redis_us:.1f} µs (INFO cpu)")
    lines.append(
        f"load generator CPU: {cost.own_share:.0%} of one core,"
        f" {cost.own_share / CORES:.0%} of the machine's {CORES} cores"
    )
    return lines


async def run_games(
    url: str, workload: Workload, redis_url: str | None, server_pids: list[int]
) -> int:
    """Play games; print throughput, latency, errors, CPU, integrity and Redis cost. Returns
    the number of error responses plus acknowledged answers missing, changed or doubled (0 for
    this service)."""
    tokens = await sign_in(url, workload.players) if workload.signed_in else None
    commands = RedisCost(redis_url) if redis_url else None
    meter = CpuMeter(server_pids, redis_url)
    stats, cost = await play(url, workload, tokens, meter)
    meter.close()
    for line in report(stats, cost):
        print(line)
    if commands is not None:
        per_request, detail = commands.per_request(stats.requests)
        print(f"redis commands per request: {per_request:.2f}  (all commands: {detail})")
        memory = commands.memory_per_session(sorted(stats.finished))
        print(f"memory per finished session: {memory:.0f} B")
    integrity = await check_integrity(url, stats)
    print(f"integrity: {integrity}")
    errors = sum(stats.errors().values())
    return errors + integrity["missing"] + integrity["changed"] + integrity["doubled"]
