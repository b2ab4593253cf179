"""Compare mode: the service beside its ceiling, its floor and the original strategy.

Starts, on this machine and in this run, one Redis with the JSON module, one without modules,
and one uvicorn worker per variant; then, in interleaved rounds, drives each variant's answer
route with the same workload and prints throughput as ratios (the machine is shared and noisy,
absolute numbers drift; ratios from one run hold).

Workload per variant and round: create sessions of 20 questions (untimed), then C concurrent
players post answers for `duration` seconds, taking the answers of each session in order, so
the answers of one session are in flight at the same time; then every answered session is read
back (integrity) and Redis commands per request are taken from INFO commandstats.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import uvloop

from bench import load
from bench.client import Connection
from bench.load import RedisCost, Stats, answer_body, check_integrity, percentile, play_one_game
from tests.servers import SERVICE, SERVICE_ENV, LocalRedis, free_port, uvicorn_command

ROOT = Path(__file__).resolve().parent.parent
QUESTIONS_PER_SESSION = 20


@dataclass
class Variant:
    name: str
    target: str  # the app factory, "module:attr"
    env: dict[str, str]
    redis_url: str | None  # for Redis cost; None: no Redis
    integrity: bool = True
    port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None
    rounds: list[dict[str, float]] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        self.process = subprocess.Popen(
            uvicorn_command(self.target, self.port, "--log-level", "warning"),
            cwd=ROOT,
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

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            self.process.wait(10)


async def create_sessions(url: str, count: int, players: int) -> list[tuple[str, list[str]]]:
    ids = [f"q{n:03d}" for n in range(1, QUESTIONS_PER_SESSION + 1)]
    made: list[tuple[str, list[str]]] = []
    stats = Stats()

    async def creator(share: int) -> None:
        conn = Connection(url)
        for _ in range(share):
            _, game = await stats.call(
                conn, "create", "POST", "/api/game/session", {"questionIds": ids}
            )
            made.append((game["sessionId"], ids))
        await conn.close()

    await asyncio.gather(*(creator(count // players) for _ in range(players)))
    return made


async def answer_phase(
    url: str, sessions: list[tuple[str, list[str]]], players: int, duration: float
) -> tuple[Stats, float]:
    tasks: Iterator[tuple[str, str]] = ((sid, qid) for sid, ids in sessions for qid in ids)
    stats = Stats()
    deadline = time.perf_counter() + duration

    async def answering() -> None:
        conn = Connection(url)
        for sid, qid in tasks:
            if time.perf_counter() > deadline:
                break
            status, result = await stats.call(
                conn, "answer", "POST", "/api/game/answer", answer_body(sid, qid)
            )
            if status == 200 and "totalPoints" in result:
                stats.acknowledged[(sid, qid)] = result["totalPoints"]
        await conn.close()

    started = time.perf_counter()
    await asyncio.gather(*(answering() for _ in range(players)))
    return stats, time.perf_counter() - started


async def measure(variant: Variant, players: int, duration: float, sessions: int) -> None:
    cost = RedisCost(variant.redis_url) if variant.redis_url else None
    made = await create_sessions(variant.url, sessions, players)
    per_create = cost.per_request(len(made))[0] if cost else 0.0
    stats, elapsed = await answer_phase(variant.url, made, players, duration)
    answers = len(stats.latencies["answer"])
    per_answer = cost.per_request(answers)[0] if cost else 0.0
    row = {
        "answers_per_s": answers / elapsed,
        "p50_ms": percentile(stats.latencies["answer"], 0.5) * 1000,
        "p99_ms": percentile(stats.latencies["answer"], 0.99) * 1000,
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


def median(variant: Variant, key: str) -> float | None:
    values = [r[key] for r in variant.rounds if key in r]
    return statistics.median(values) if values else None


def table(variants: list[Variant]) -> list[str]:
    ceiling = median(variants[0], "answers_per_s") or 1.0
    floor = median(variants[1], "answers_per_s") or 1.0
    baseline = median(variants[-1], "answers_per_s") or 1.0
    header = (
        "| variant | answers/s | vs constant | vs floor | vs original | p50 ms | p99 ms "
        "| errors | lost+doubled / acknowledged | cmds/create | cmds/answer | cmds/results "
        "| B/session |"
    )
    lines = [header, "|" + "---|" * 13]

    def cell(value: float | None, fmt: str) -> str:
        return "-" if value is None else format(value, fmt)

    for v in variants:
        rate = median(v, "answers_per_s") or 0.0
        lost, acked = median(v, "lost_or_doubled"), median(v, "acknowledged")
        integrity = "-" if lost is None else f"{lost:.0f} / {acked:.0f}"
        has_redis = v.redis_url is not None
        lines.append(
            f"| {v.name} | {rate:.0f} | {rate / ceiling:.2f} | {rate / floor:.2f} "
            f"| {rate / baseline:.2f} | {cell(median(v, 'p50_ms'), '.2f')} "
            f"| {cell(median(v, 'p99_ms'), '.2f')} | {cell(median(v, 'errors'), '.0f')} "
            f"| {integrity} | {cell(median(v, 'create_cmds') if has_redis else None, '.2f')} "
            f"| {cell(median(v, 'answer_cmds') if has_redis else None, '.2f')} "
            f"| {cell(median(v, 'results_cmds') if has_redis else None, '.2f')} "
            f"| {cell(median(v, 'bytes_per_session'), '.0f')} |"
        )
    return lines


def compare(players: int, duration: float, rounds: int, sessions: int) -> None:
    json_redis, plain_redis = LocalRedis(), LocalRedis(json_module=False)
    json_redis.start()
    plain_redis.start()
    json_url, plain_url = json_redis.url, plain_redis.url
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
        Variant("service, RedisJSON", SERVICE, {"REDIS_URL": json_url}, json_url),
        Variant("service, plain Redis", SERVICE, {"REDIS_URL": plain_url}, plain_url),
        Variant(
            "original strategy (GET, change, SET EX)",
            "bench.variants:baseline_app",
            {"REDIS_URL": json_url},
            json_url,
        ),
    ]
    try:
        for v in variants:
            v.start()
        for v in variants:
            v.wait_ready()
        for round_number in range(1, rounds + 1):
            for v in variants:
                uvloop.run(measure(v, players, duration, sessions))
                print(
                    f"round {round_number} {v.name}: {v.rounds[-1]['answers_per_s']:.0f} answers/s",
                    file=sys.stderr,
                )
        print(
            f"{players} players, {duration:.0f} s per variant and round, median of {rounds} "
            f"rounds, one uvicorn worker each"
        )
        for line in table(variants):
            print(line)
    finally:
        for v in variants:
            v.stop()
        for server in (json_redis, plain_redis):
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
        bad = uvloop.run(load.run_games(service.url, 4, duration, 1_000_000, 0.5, url))
    finally:
        service.stop()
        server.stop()
        shutil.rmtree(server.directory, ignore_errors=True)
    return 1 if bad else 0
