"""Compare mode: variants side by side, started and measured in one run on this machine.

`compare`: the service beside its ceiling, its floor and the original strategy, and with
signed-in players (each session made and answered with its player's Bearer token).

Starts, on this machine and in this run, one Redis with the JSON module, one without modules,
and one uvicorn worker per variant; then, in interleaved rounds, drives each variant's answer
route with the same workload and prints throughput as ratios (the machine is shared and noisy,
absolute numbers drift; ratios from one run hold).

Workload per variant and round: create sessions of 20 questions (untimed), then C concurrent
players post answers for `duration` seconds, taking the answers of each session in order, so
the answers of one session are in flight at the same time; then every answered session is read
back (integrity) and Redis commands per request are taken from INFO commandstats.

`compare --games`: the service on uvicorn and on Granian, with 1 and 2 workers, each playing
complete games (bench/load.py) with anonymous and signed-in players, 50 and 200 of them, on one
Redis; with `--baseline DIR` the same variants also run another checkout's code.

Both report, over each measured window, the server's CPU per request (its processes: master
and workers), Redis's (INFO cpu) and the load generator's own share of the CPU (bench/cost.py).
"""

from __future__ import annotations

import asyncio
import os
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import uvloop

from bench import load
from bench.client import Connection
from bench.cost import CORES, Cost, CpuMeter
from bench.load import RedisCost, Stats, answer_body, check_integrity, percentile, play_one_game
from tests.servers import SERVICE, SERVICE_ENV, LocalRedis, free_port, server_command

ROOT = Path(__file__).resolve().parent.parent
QUESTIONS_PER_SESSION = 20
SIGNED_IN = "service, RedisJSON, signed-in players"


@dataclass
class Variant:
    name: str
    target: str  # the app factory, "module:attr"
    env: dict[str, str]
    redis_url: str | None  # for Redis cost; None: no Redis
    integrity: bool = True
    server: str = "uvicorn"
    workers: int = 1
    checkout: Path = ROOT  # whose code it runs: this one, or another (before/after)
    signed_in: bool = False  # answer-route variants: players with accounts, Bearer tokens
    tokens: list[str] = field(default_factory=list)
    port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None
    rounds: list[dict[str, float]] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        command = server_command(
            self.target, self.port, self.server, self.workers, checkout=self.checkout
        )
        self.process = subprocess.Popen(
            [*command, "--log-level", "warning"],
            cwd=self.checkout,
            env={**os.environ, **SERVICE_ENV, **self.env},
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,  # the service's request log: written, not shown
        )

    def wait_ready(self) -> None:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                httpx.post(
                    self.url + "/api/game/session", json={"questionIds": ["q001"]}, timeout=1
                )
                return
            except httpx.TransportError:
                time.sleep(0.1)
        raise TimeoutError(f"{self.name} did not start")

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def meter(self) -> CpuMeter:
        """CPU of its processes (a master's workers too) and of its Redis."""
        return CpuMeter([self.pid], self.redis_url)

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            self.process.wait(15)


Made = list[tuple[str, list[str], str | None]]  # session id, its questions, its owner's token


async def create_sessions(url: str, count: int, tokens: list[str | None]) -> Made:
    """`count` sessions of QUESTIONS_PER_SESSION questions, made by one player per token (None:
    anonymous), each on its own connection."""
    ids = [f"q{n:03d}" for n in range(1, QUESTIONS_PER_SESSION + 1)]
    made: Made = []
    stats = Stats()

    async def creator(token: str | None) -> None:
        conn = Connection(url, token)
        for _ in range(count // len(tokens)):
            _, game = await stats.call(
                conn, "create", "POST", "/api/game/session", {"questionIds": ids}
            )
            made.append((game["sessionId"], ids, token))
        await conn.close()

    await asyncio.gather(*(creator(token) for token in tokens))
    return made


async def answer_phase(url: str, sessions: Made, players: int, duration: float) -> Stats:
    """`players` connections take the sessions' answers in order, so the answers of one session
    are in flight at the same time; a signed-in player's session is answered with its token
    (on whichever connection takes it: as many connections as for anonymous players)."""
    tasks: Iterator[tuple[str, str, str | None]] = (
        (sid, qid, token) for sid, ids, token in sessions for qid in ids
    )
    stats = Stats()
    deadline = time.perf_counter() + duration

    async def answering() -> None:
        conn = Connection(url)
        for sid, qid, token in tasks:
            if time.perf_counter() > deadline:
                break
            status, result = await stats.call(
                conn, "answer", "POST", "/api/game/answer", answer_body(sid, qid), token
            )
            if status == 200 and "totalPoints" in result:
                stats.acknowledged[(sid, qid)] = result["totalPoints"]
                if token is not None:
                    stats.owners[sid] = token
        await conn.close()

    await asyncio.gather(*(answering() for _ in range(players)))
    return stats


async def measure(variant: Variant, players: int, duration: float, sessions: int) -> None:
    cost = RedisCost(variant.redis_url) if variant.redis_url else None
    if variant.signed_in and not variant.tokens:  # once, before its first round
        variant.tokens.extend(await load.sign_in(variant.url, players))
    tokens: list[str | None] = [*variant.tokens] if variant.signed_in else [None] * players
    made = await create_sessions(variant.url, sessions, tokens)
    per_create = cost.per_request(len(made))[0] if cost else 0.0
    meter = variant.meter()
    start = meter.read()
    stats = await answer_phase(variant.url, made, players, duration)
    spent = meter.cost(start)
    meter.close()
    answers = len(stats.latencies["answer"])
    per_answer = cost.per_request(answers)[0] if cost else 0.0
    row = {
        "answers_per_s": answers / spent.wall,
        **latencies(stats, ("answer",)),
        **cpu(spent, answers),
        "errors": float(sum(stats.errors().values())),
        "create_cmds": per_create,
        "answer_cmds": per_answer,
    }
    if variant.integrity:
        integrity = await check_integrity(variant.url, stats)
        row["results_cmds"] = cost.per_request(integrity["games"])[0] if cost else 0.0
        row["lost_or_doubled"] = float(
            integrity["missing"] + integrity["changed"] + integrity["doubled"]
        )
        row["acknowledged"] = float(integrity["answers"])
        if cost is not None:  # 30 whole 10-question games, then MEMORY USAGE of each
            games = Stats()
            conns = [Connection(variant.url)]
            for _ in range(30):
                await play_one_game(conns, games, burst=False)
            await conns[0].close()
            row["bytes_per_session"] = cost.memory_per_session(sorted(games.finished))
    variant.rounds.append(row)


def latencies(stats: Stats, routes: tuple[str, ...]) -> dict[str, float]:
    """p50, p95 and p99 of each route, in milliseconds."""
    return {
        f"{route}_p{q}": percentile(stats.latencies.get(route, []), q / 100) * 1000
        for route in routes
        for q in (50, 95, 99)
    }


def cpu(spent: Cost, requests: int) -> dict[str, float]:
    """Server and Redis CPU microseconds per request, and the load generator's share of one
    core, over a measured window."""
    server_us, redis_us = spent.per_request_us(requests)
    row = {"generator": spent.own_share}
    if server_us is not None:
        row["server_us"] = server_us
    if redis_us is not None:
        row["redis_us"] = redis_us
    return row


def median(rounds: list[dict[str, float]], key: str) -> float | None:
    values = [r[key] for r in rounds if key in r]
    return statistics.median(values) if values else None


def cell(value: float | None, fmt: str) -> str:
    return "-" if value is None else format(value, fmt)


def spread(rounds: list[dict[str, float]], route: str) -> str:
    """A route's p50 / p95 / p99 as one cell."""
    return " / ".join(cell(median(rounds, f"{route}_p{q}"), ".1f") for q in (50, 95, 99))


def integrity(rounds: list[dict[str, float]]) -> str:
    lost, acked = median(rounds, "lost_or_doubled"), median(rounds, "acknowledged")
    return "-" if lost is None else f"{lost:.0f} / {acked:.0f}"


def generator(rounds: list[dict[str, float]]) -> str:
    """The load generator's CPU: share of one core / of the machine."""
    share = median(rounds, "generator") or 0.0
    return f"{share:.0%} / {share / CORES:.0%}"


def table(variants: list[Variant]) -> list[str]:
    ceiling = median(variants[0].rounds, "answers_per_s") or 1.0
    floor = median(variants[1].rounds, "answers_per_s") or 1.0
    baseline = median(variants[-1].rounds, "answers_per_s") or 1.0
    header = (
        "| variant | answers/s | vs constant | vs floor | vs original | answer p50 / p95 / p99 ms "
        "| server CPU µs/answer | Redis CPU µs/answer | errors | lost+doubled / acknowledged "
        "| cmds/create | cmds/answer | cmds/results | B/session | generator CPU core / machine |"
    )
    lines = [header, "|" + "---|" * 15]
    for v in variants:
        rounds = v.rounds
        rate = median(rounds, "answers_per_s") or 0.0
        redis = median if v.redis_url is not None else lambda rounds, key: None
        lines.append(
            f"| {v.name} | {rate:.0f} | {rate / ceiling:.2f} | {rate / floor:.2f} "
            f"| {rate / baseline:.2f} | {spread(rounds, 'answer')} "
            f"| {cell(median(rounds, 'server_us'), '.0f')} "
            f"| {cell(median(rounds, 'redis_us'), '.1f')} "
            f"| {cell(median(rounds, 'errors'), '.0f')} "
            f"| {integrity(rounds)} | {cell(redis(rounds, 'create_cmds'), '.2f')} "
            f"| {cell(redis(rounds, 'answer_cmds'), '.2f')} "
            f"| {cell(redis(rounds, 'results_cmds'), '.2f')} "
            f"| {cell(median(rounds, 'bytes_per_session'), '.0f')} | {generator(rounds)} |"
        )
    return lines


def run_variants(
    variants: list[Variant], rounds: int, measure_round: Callable[[Variant], None]
) -> None:
    """Start every variant, then measure them in interleaved rounds (a busy minute on the
    machine then hits every variant alike); stop them whatever happens."""
    try:
        for v in variants:
            v.start()
        for v in variants:
            v.wait_ready()
        for round_number in range(1, rounds + 1):
            for v in variants:
                done = len(v.rounds)
                measure_round(v)
                rates = ", ".join(f"{r['answers_per_s']:.0f}" for r in v.rounds[done:])
                print(f"round {round_number} {v.name}: {rates} answers/s", file=sys.stderr)
    finally:
        for v in variants:
            v.stop()


def compare(
    players: int, duration: float, rounds: int, sessions: int, baseline: Path | None
) -> None:
    json_redis, plain_redis = LocalRedis(), LocalRedis(json_module=False)
    json_redis.start()
    plain_redis.start()
    json_url, plain_url = json_redis.url, plain_redis.url
    service = {"REDIS_URL": json_url}
    variants = [
        Variant("constant JSON route (ceiling)", "bench.variants:constant_app", {}, None, False),
        Variant(
            "floor: decode + 1 EVALSHA + encode",
            "bench.variants:floor_app",
            {"REDIS_URL": json_url},
            json_url,
            False,
        ),
        Variant(
            "floor, auto-pipelined",
            "bench.variants:floor_app",
            {"REDIS_URL": json_url, "FLOOR_PIPELINE": "true"},
            json_url,
            False,
        ),
        Variant("service, memory store", SERVICE, {"USE_MEMORY_SESSIONS": "true"}, None),
        Variant("service, RedisJSON", SERVICE, service, json_url),
        Variant(
            "service, RedisJSON, signed-in players", SERVICE, service, json_url, signed_in=True
        ),
        *(
            [
                Variant(
                    f"service, RedisJSON, {baseline}", SERVICE, service, json_url, checkout=baseline
                )
            ]
            if baseline
            else []
        ),
        Variant("service, plain Redis", SERVICE, {"REDIS_URL": plain_url}, plain_url),
        Variant(
            "original strategy (GET, change, SET EX)",
            "bench.variants:baseline_app",
            {"REDIS_URL": json_url},
            json_url,
        ),
    ]
    try:
        run_variants(
            variants, rounds, lambda v: uvloop.run(measure(v, players, duration, sessions))
        )
        print(
            f"{players} players, {duration:.0f} s per variant and round, median of {rounds} "
            f"rounds, one uvicorn worker each"
        )
        for line in table(variants):
            print(line)
        rates = {v.name: median(v.rounds, "answers_per_s") or 0.0 for v in variants}
        anonymous, signed = rates["service, RedisJSON"], rates[SIGNED_IN]
        print(f"answer route, signed-in / anonymous answers/s: {signed / anonymous:.2f}")
    finally:
        for server in (json_redis, plain_redis):
            server.stop()
            shutil.rmtree(server.directory, ignore_errors=True)


# --- complete games on the service: ASGI server x workers x players x signed in ---------------


async def measure_games(variant: Variant, workload: load.Workload, tokens: list[str]) -> None:
    """One window of complete games; the row is keyed by the workload."""
    meter = variant.meter()
    players = tokens[: workload.players] if workload.signed_in else None
    stats, spent = await load.play(variant.url, workload, players, meter)
    meter.close()
    checked = await check_integrity(variant.url, stats)
    variant.rounds.append(
        {
            "players": workload.players,
            "signed_in": float(workload.signed_in),
            "games_per_s": len(stats.finished) / spent.wall,
            "answers_per_s": len(stats.latencies["answer"]) / spent.wall,
            "requests_per_s": stats.requests / spent.wall,
            **latencies(stats, ("create", "answer", "results")),
            **cpu(spent, stats.requests),
            "errors": float(sum(stats.errors().values())),
            "lost_or_doubled": float(checked["missing"] + checked["changed"] + checked["doubled"]),
            "acknowledged": float(checked["answers"]),
        }
    )


def games_table(variants: list[Variant], workloads: list[load.Workload]) -> list[str]:
    """A row per variant and workload; `vs first`: answers/s against the first variant's on
    the same workload."""
    lines = [
        "| checkout | server | workers | players | signed in | games/s | answers/s | vs first "
        "| requests/s | server CPU µs/request | Redis CPU µs/request "
        "| create p50 / p95 / p99 ms | answer p50 / p95 / p99 ms | results p50 / p95 / p99 ms "
        "| errors | lost+doubled / acknowledged | generator CPU core / machine |",
        "|" + "---|" * 17,
    ]
    for w in workloads:
        first = median(rows(variants[0], w), "answers_per_s") or 1.0
        for v in variants:
            r = rows(v, w)
            rate = median(r, "answers_per_s") or 0.0
            lines.append(
                f"| {v.checkout.name} | {v.server} | {v.workers} | {w.players} "
                f"| {'yes' if w.signed_in else 'no'} | {cell(median(r, 'games_per_s'), '.0f')} "
                f"| {rate:.0f} | {rate / first:.2f} | {cell(median(r, 'requests_per_s'), '.0f')} "
                f"| {cell(median(r, 'server_us'), '.0f')} | {cell(median(r, 'redis_us'), '.1f')} "
                f"| {spread(r, 'create')} | {spread(r, 'answer')} | {spread(r, 'results')} "
                f"| {cell(median(r, 'errors'), '.0f')} | {integrity(r)} | {generator(r)} |"
            )
    return lines


def rows(variant: Variant, workload: load.Workload) -> list[dict[str, float]]:
    return [
        r
        for r in variant.rounds
        if r["players"] == workload.players and r["signed_in"] == workload.signed_in
    ]


def signed_in_ratios(variants: list[Variant], workloads: list[load.Workload]) -> list[str]:
    """Signed-in answers/s over anonymous answers/s, per variant and player count."""
    lines = []
    for v in variants:
        for players in sorted({w.players for w in workloads}):
            signed, anonymous = (
                median(rows(v, load.Workload(players, 0, signed_in)), "answers_per_s")
                for signed_in in (True, False)
            )
            if signed and anonymous:
                lines.append(
                    f"signed-in / anonymous answers/s, {v.name}, {players} players: "
                    f"{signed / anonymous:.2f}"
                )
    return lines


def compare_games(
    servers: list[str],
    workers: list[int],
    players: list[int],
    auth: list[str],
    duration: float,
    rounds: int,
    baseline: Path | None,
) -> None:
    """The service on each ASGI server with each number of workers (and, with `baseline`, the
    same from that checkout), all on one Redis, each playing every workload per round."""
    server = LocalRedis()
    server.start()
    # Tokens outlive the run: players sign in once, before the first round.
    env = {"REDIS_URL": server.url, "ACCESS_TOKEN_SECONDS": "86400"}
    variants = [
        Variant(f"{checkout.name} {name} x{n}", SERVICE, env, server.url, True, name, n, checkout)
        for checkout in [ROOT, *([baseline] if baseline else [])]
        for name in servers
        for n in workers
    ]
    workloads = [
        load.Workload(count, duration, signed_in=kind == "signed-in")
        for count in players
        for kind in auth
    ]
    tokens: list[str] = []

    def measure_round(v: Variant) -> None:
        if "signed-in" in auth and not tokens:
            tokens.extend(uvloop.run(load.sign_in(v.url, max(players))))
        for w in workloads:
            uvloop.run(measure_games(v, w, tokens))

    try:
        run_variants(variants, rounds, measure_round)
        print(
            f"complete games (create, ten answers with a wager on the final, results), "
            f"{duration:.0f} s per variant, workload and round, median of {rounds} rounds; "
            f"a fifth of the players send a game's answers at once; {CORES} cores shared by "
            f"the load generator, the server and Redis"
        )
        for line in games_table(variants, workloads):
            print(line)
        for line in signed_in_ratios(variants, workloads):
            print(line)
    finally:
        server.stop()
        shutil.rmtree(server.directory, ignore_errors=True)


def smoke(duration: float) -> int:
    """Start Redis with JSON and one service worker, play for a few seconds with a few players
    (half of them sending whole games at once); fail on any error or integrity problem."""
    server = LocalRedis()
    server.start()
    url = server.url
    service = Variant("service", SERVICE, {"REDIS_URL": url}, url)
    try:
        service.start()
        service.wait_ready()
        workload = load.Workload(4, duration, burst=0.5)
        bad = uvloop.run(load.run_games(service.url, workload, url, [service.pid]))
    finally:
        service.stop()
        server.stop()
        shutil.rmtree(server.directory, ignore_errors=True)
    return 1 if bad else 0
