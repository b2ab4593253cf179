"""python -m bench {run,compare,smoke} — see docs/performance.md."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import uvloop

from bench import compare, load
from tests.servers import ASGI_SERVERS


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m bench")
    commands = parser.add_subparsers(dest="command", required=True)
    run = commands.add_parser("run", help="play complete games against a running server")
    run.add_argument("--url", default="http://127.0.0.1:8000")
    run.add_argument("--players", type=int, default=50)
    run.add_argument("--duration", type=float, default=10.0, help="seconds")
    run.add_argument("--games", type=int, default=1_000_000, help="stop after this many games")
    run.add_argument(
        "--burst",
        type=float,
        default=0.2,
        help="share of players who send all answers of a game at once",
    )
    run.add_argument("--signed-in", action="store_true", help="each player signs up, logs in")
    run.add_argument("--redis-url", help="the server's Redis, for commands, memory and CPU")
    run.add_argument(
        "--server-pid",
        type=int,
        action="append",
        default=[],
        help="the server's process (its children included) for CPU per request; repeatable",
    )
    cmp = commands.add_parser("compare", help="variants side by side, in one run")
    cmp.add_argument(
        "--games",
        action="store_true",
        help="complete games on the service: ASGI server x workers x players x signed in",
    )
    cmp.add_argument(
        "--players", type=int, nargs="+", help="default 50; with --games 50 200 (one row each)"
    )
    cmp.add_argument("--duration", type=float, default=5.0, help="seconds per variant and round")
    cmp.add_argument("--rounds", type=int, default=3)
    cmp.add_argument("--sessions", type=int, default=3000, help="sessions created per round")
    cmp.add_argument("--servers", nargs="+", choices=ASGI_SERVERS, default=list(ASGI_SERVERS))
    cmp.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    cmp.add_argument(
        "--auth", nargs="+", choices=["anonymous", "signed-in"], default=["anonymous", "signed-in"]
    )
    cmp.add_argument(
        "--baseline", type=Path, help="also run the service from this checkout (before/after)"
    )
    smoke = commands.add_parser("smoke", help="a few seconds against a local server: CI")
    smoke.add_argument("--duration", type=float, default=3.0)
    args = parser.parse_args()

    if args.command == "compare" and args.games:
        compare.compare_games(
            args.servers,
            args.workers,
            args.players or [50, 200],
            args.auth,
            args.duration,
            args.rounds,
            args.baseline,
        )
        return 0
    if args.command == "compare":
        for players in args.players or [50]:
            compare.compare(players, args.duration, args.rounds, args.sessions, args.baseline)
        return 0
    if args.command == "smoke":
        return compare.smoke(args.duration)
    workload = load.Workload(args.players, args.duration, args.signed_in, args.burst, args.games)
    return (
        1 if uvloop.run(load.run_games(args.url, workload, args.redis_url, args.server_pid)) else 0
    )


if __name__ == "__main__":
    sys.exit(main())
