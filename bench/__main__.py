"""python -m bench {run,compare,smoke} — see the README's Performance section."""

from __future__ import annotations

import argparse
import sys

import uvloop

from bench import compare, load


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
    run.add_argument("--redis-url", help="the server's Redis, for commands and memory")
    cmp = commands.add_parser("compare", help="ratios against ceiling, floor and baseline")
    cmp.add_argument("--players", type=int, default=50)
    cmp.add_argument("--duration", type=float, default=5.0, help="seconds per variant and round")
    cmp.add_argument("--rounds", type=int, default=3)
    cmp.add_argument("--sessions", type=int, default=3000, help="sessions created per round")
    smoke = commands.add_parser("smoke", help="a few seconds against a local server: CI")
    smoke.add_argument("--duration", type=float, default=3.0)
    args = parser.parse_args()

    if args.command == "compare":
        compare.compare(args.players, args.duration, args.rounds, args.sessions)
        return 0
    if args.command == "smoke":
        return compare.smoke(args.duration)
    bad = uvloop.run(
        load.run_games(
            args.url, args.players, args.duration, args.games, args.burst, args.redis_url
        )
    )
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
