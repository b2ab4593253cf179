"""python -m bench.cpu: server CPU per request of this checkout against another, in one run.

Starts one Redis with the JSON module and one uvicorn worker per checkout (this one and
`--baseline`, each on its own database of that Redis), then, in alternating rounds, drives
each with `python -m bench run` (complete games, integrity checked) and reads what the round
cost: the server process's CPU time (/proc/<pid>/stat) over the game requests it served (its
/metrics, so the load tool's read-back counts too), and the load generator's own CPU. The
machine is shared: compare the two checkouts within one run, not across runs.
"""

from __future__ import annotations

import argparse
import os
import re
import resource
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

from bench.sizing import cpu_seconds, served
from tests.servers import HTTP_PROTOCOL, ApiProcess, LocalRedis

ROOT = Path(__file__).resolve().parent.parent
CORES = os.cpu_count() or 1
COLUMNS = {
    "us_per_request": "µs server CPU / request",
    "answers_per_s": "answers/s",
    "p50": "answer p50 ms",
    "p99": "answer p99 ms",
    "server_share": "server CPU share",
    "load_share": "load generator CPU share",
}


def children_cpu() -> float:
    """CPU seconds of this process's finished children (the load generator runs)."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def one_round(api: ApiProcess, players: int, duration: float) -> dict[str, float]:
    assert api.process is not None
    requests_before, _ = served(api)
    cpu_before, load_before = cpu_seconds(api.process.pid), children_cpu()
    started = time.monotonic()
    command = ["run", "--url", api.url, "--players", str(players), "--duration", str(duration)]
    run = subprocess.run(
        [sys.executable, "-m", "bench", *command],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    elapsed = time.monotonic() - started
    cpu = cpu_seconds(api.process.pid) - cpu_before
    requests = served(api)[0] - requests_before
    if run.returncode != 0:  # an error response, or an answer lost, changed or doubled
        raise RuntimeError(f"bench run against {api.root} failed:\n{run.stdout}{run.stderr}")
    answer = re.search(r"^answer\s+(\d+)\s+([\d.]+)\s+[\d.]+\s+([\d.]+)", run.stdout, re.M)
    assert answer is not None, run.stdout
    return {
        "us_per_request": cpu / requests * 1e6,
        "answers_per_s": int(answer[1]) / duration,
        "p50": float(answer[2]),
        "p99": float(answer[3]),
        "server_share": cpu / elapsed / CORES,
        "load_share": (children_cpu() - load_before) / elapsed / CORES,
    }


def report(names: list[str], rounds: dict[str, list[dict[str, float]]]) -> None:
    print("| checkout | " + " | ".join(COLUMNS.values()) + " |")
    print("|---" * (len(COLUMNS) + 1) + "|")
    median = {n: {c: statistics.median(r[c] for r in rounds[n]) for c in COLUMNS} for n in names}
    for name in names:
        m = median[name]
        print(
            f"| {name} | {m['us_per_request']:.0f} | {m['answers_per_s']:.0f} | {m['p50']:.2f} "
            f"| {m['p99']:.2f} | {m['server_share']:.0%} | {m['load_share']:.0%} |"
        )
    before, after = median[names[0]], median[names[1]]
    print(
        f"{names[1]} / {names[0]}: CPU per request "
        f"{after['us_per_request'] / before['us_per_request']:.2f}, answers/s "
        f"{after['answers_per_s'] / before['answers_per_s']:.2f}"
    )
    for name in names:
        print(
            f"{name}, µs per request by round:", [round(r["us_per_request"]) for r in rounds[name]]
        )


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.cpu", description=__doc__)
    parser.add_argument("--baseline", type=Path, required=True, help="the other checkout")
    parser.add_argument("--players", type=int, default=50)
    parser.add_argument("--duration", type=float, default=10.0, help="seconds per round")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    redis_server = LocalRedis()
    redis_server.start()
    url = redis_server.url.removesuffix("/0")
    # An older checkout runs on uvicorn's own httptools protocol, as it was served.
    bounded = (args.baseline / "app" / "http_limits.py").exists()
    apis = {
        f"baseline ({args.baseline})": ApiProcess(
            {"REDIS_URL": url + "/1"},
            root=args.baseline,
            http=HTTP_PROTOCOL if bounded else "httptools",
        ),
        "this checkout": ApiProcess({"REDIS_URL": url + "/2"}),
    }
    rounds: dict[str, list[dict[str, float]]] = {name: [] for name in apis}
    try:
        for api in apis.values():
            api.start()
        for _ in range(args.rounds):
            for name, api in apis.items():
                rounds[name].append(one_round(api, args.players, args.duration))
    finally:
        for api in apis.values():
            api.kill()
        redis_server.stop()
        shutil.rmtree(redis_server.directory, ignore_errors=True)
    print(
        f"{args.players} players, {args.duration:g} s per round, median of {args.rounds} "
        f"alternating rounds; one uvicorn worker each, {CORES} cores shared by all"
    )
    report(list(apis), rounds)


if __name__ == "__main__":
    main()
