"""python -m bench.sizing: the figures behind the README's sizing table.

Starts a Redis with the JSON module (AOF fsync'd every second, as compose runs it) and one or
more instances (one uvicorn worker each, as ./serve and the Dockerfile start them), drives each
instance with its own `python -m bench run` process (complete games, integrity checked), and
reads what the run cost in CPU: each instance's process and Redis's (/proc/<pid>/stat), and
Redis's own account of its script calls (INFO commandstats).

CPU per request is what sizing needs. The throughput of one run depends on everything else on
the machine (here two cores shared by the load generators, the instances and Redis); the CPU
time one request costs an instance or Redis depends on it much less.
"""

from __future__ import annotations

import argparse
import re
import shutil
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass

import httpx
import redis

from bench.cost import cpu_seconds, rss_mb
from tests.servers import TEST_METRICS_TOKEN, ApiProcess, LocalRedis

METRICS = {"authorization": f"Bearer {TEST_METRICS_TOKEN}"}  # ApiProcess turns /metrics on


def script_usec(client: redis.Redis) -> tuple[int, int]:
    """(calls, microseconds) of EVALSHA so far, by Redis's own count."""
    stats = client.info("commandstats").get("cmdstat_evalsha", {"calls": 0, "usec": 0})
    return int(stats["calls"]), int(stats["usec"])


@dataclass
class Sample:
    """What the instances and Redis had done up to one moment."""

    at: float
    requests: int  # game requests served, all instances
    answers: int
    instance_cpu: float  # seconds, all instances
    redis_cpu: float
    script_calls: int
    script_usec: int


def served(api: ApiProcess) -> tuple[int, int]:
    """(game requests, answers) an instance has served, from its /metrics."""
    text = httpx.get(api.url + "/metrics", headers=METRICS, timeout=5).text
    requests = answers = 0
    for line in text.splitlines():
        if line.startswith("http_requests_total{") and 'route="/api/game/' in line:
            count = int(float(line.rsplit(" ", 1)[1]))
            requests += count
            answers += count if 'route="/api/game/answer"' in line else 0
    return requests, answers


def sample(server: LocalRedis, apis: list[ApiProcess], client: redis.Redis) -> Sample:
    assert server.process is not None
    counts = [served(api) for api in apis]
    calls, usec = script_usec(client)
    return Sample(
        at=time.monotonic(),
        requests=sum(c[0] for c in counts),
        answers=sum(c[1] for c in counts),
        instance_cpu=sum(cpu_seconds(api.process.pid) for api in apis if api.process),
        redis_cpu=cpu_seconds(server.process.pid),
        script_calls=calls,
        script_usec=usec,
    )


@dataclass
class Run:
    instances: int
    window: tuple[Sample, Sample]  # inside the load phase: no start-up, no read-back
    bad: int  # errors + answers missing, changed or doubled, as `bench run` reports them
    session_bytes: float | None
    rss_mb: float  # the largest instance's resident memory after the run

    def rate(self, field: str) -> float:
        first, last = self.window
        return float(getattr(last, field) - getattr(first, field))


def measure(server: LocalRedis, apis: list[ApiProcess], players: int, seconds: float) -> Run:
    """`bench run` against each instance at once; the cost is taken between two samples, one
    2 s after the start (the load generators are up) and one 1 s before the end."""
    client = redis.Redis.from_url(server.url)
    runs = [
        subprocess.Popen(
            [sys.executable, "-m", "bench", "run", "--url", api.url, "--players", str(players)]
            + ["--duration", str(seconds)]
            + (["--redis-url", server.url] if i == 0 else []),  # memory per session, once
            stdout=subprocess.PIPE,
            text=True,
        )
        for i, api in enumerate(apis)
    ]
    time.sleep(2)
    first = sample(server, apis, client)
    time.sleep(seconds - 3)
    last = sample(server, apis, client)
    text = "\n".join(run.communicate(timeout=seconds + 120)[0] for run in runs)
    client.close()
    bad = sum(1 for line in text.splitlines() if line.startswith("errors by status: {"))
    bad += sum(int(n) for n in re.findall(r"'(?:missing|changed|doubled)': (\d+)", text))
    size = re.search(r"^memory per finished session: (\d+) B", text, re.MULTILINE)
    rss = max(rss_mb(api.process.pid) for api in apis if api.process)
    return Run(len(apis), (first, last), bad, float(size.group(1)) if size else None, rss)


def row(runs: list[Run]) -> str:
    """The median of each figure over the rounds, as a table row."""
    med = statistics.median
    requests = med([r.rate("requests") / r.rate("at") for r in runs])
    answers = med([r.rate("answers") / r.rate("at") for r in runs])
    instance_ms = med([r.rate("instance_cpu") / r.rate("requests") * 1000 for r in runs])
    redis_us = med([r.rate("redis_cpu") / r.rate("requests") * 1e6 for r in runs])
    script_us = med([r.rate("script_usec") / max(r.rate("script_calls"), 1) for r in runs])
    sizes = [r.session_bytes for r in runs if r.session_bytes]
    return (
        f"| {runs[0].instances} | {requests:.0f} | {answers:.0f} | {instance_ms:.3f} |"
        f" {1000 / instance_ms:.0f} | {redis_us:.1f} | {1e6 / redis_us:.0f} | {script_us:.1f} |"
        f" {med(sizes) if sizes else 0:.0f} | {max(r.rss_mb for r in runs):.0f} |"
        f" {sum(r.bad for r in runs)} |"
    )


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.sizing")
    parser.add_argument("--instances", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--players", type=int, default=50, help="per instance")
    parser.add_argument("--duration", type=float, default=10.0, help="seconds per run")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    server = LocalRedis()
    server.start(True, "--appendfsync", "everysec")
    apis = [ApiProcess({"REDIS_URL": server.url}) for _ in range(max(args.instances))]
    results: dict[int, list[Run]] = {n: [] for n in args.instances}
    try:
        for api in apis:
            api.start()
        for _ in range(args.rounds):  # interleaved, so a busy minute hits every set-up
            for n in args.instances:
                results[n].append(measure(server, apis[:n], args.players, args.duration))
    finally:
        for api in apis:
            api.kill()
        server.stop()
        shutil.rmtree(server.directory, ignore_errors=True)
    print(
        f"\n{args.players} players per instance, {args.duration:.0f} s per run, median of"
        f" {args.rounds} rounds; one `bench run` process per instance on the same machine"
    )
    print(
        "| instances | requests/s | answers/s | instance CPU ms per request |"
        " requests/s per instance core | Redis CPU µs per request | requests/s per Redis core"
        " | EVALSHA µs (commandstats) | B per finished session | instance RSS, MB |"
        " errors + lost |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for n in args.instances:
        print(row(results[n]))
    return 1 if any(r.bad for runs in results.values() for r in runs) else 0


if __name__ == "__main__":
    sys.exit(main())
