"""The least-privilege ACL files (deploy/redis/) against the code, without a server: every
command the scripts and the account store send, and every key app/keys.py builds, is allowed.

A fast early warning for the inner loop; the proof with a real Redis, which also catches what
redis-py sends by itself, is tests/test_production.py (its ACL LOG must stay empty).
"""

from __future__ import annotations

import fnmatch
import inspect
import re

import pytest

from app import keys
from tests.servers import ROOT

DEPLOY = ROOT / "deploy" / "redis"
# Sent by app/redis_link.py: start-up storage detection, the probe, scripts and their loading,
# the session-count estimate, the invalidations' subscription.
LINK_COMMANDS = {
    "JSON.TYPE",
    "SET",
    "EVALSHA",
    "SCRIPT|LOAD",
    "DBSIZE",
    "RANDOMKEY",
    "SUBSCRIBE",
    "UNSUBSCRIBE",
}


def service_rules(name: str) -> tuple[set[str], list[str]]:
    """(allowed commands in upper case, key patterns) of the service's user in an ACL file."""
    line = next(
        line
        for line in (DEPLOY / name).read_text().splitlines()
        if line.startswith("user civic-trivia-game ")
    )
    rules = line.split()
    assert {"-@all", "resetkeys", "resetchannels"} <= set(rules)  # starts from nothing
    assert not any(r.startswith(("+@", "allkeys", "~*", "%", "&*")) for r in rules)
    channels = [r[1:] for r in rules if r.startswith("&")]
    assert channels == ["invalidate:*"]  # the one channel, app/keys.py INVALIDATIONS
    assert fnmatch.fnmatchcase(keys.INVALIDATIONS, channels[0])
    commands = {r[1:].upper() for r in rules if r.startswith("+")}
    return commands, [r[1:] for r in rules if r.startswith("~")]


def commands_in_code() -> set[str]:
    lua = "".join(path.read_text() for path in (ROOT / "lua").glob("*.lua"))
    accounts = (ROOT / "app" / "accounts.py").read_text()
    return (
        set(re.findall(r"redis\.call\('([A-Za-z.]+)'", lua))
        | set(re.findall(r'_command\(\s*"[a-z_]+",\s*"([A-Z.]+)"', accounts))
        | set(re.findall(r'return \("([A-Z.]+)", keys\.', accounts))
        | LINK_COMMANDS
    )


def test_the_code_sends_only_allowed_commands() -> None:
    used = {command.upper() for command in commands_in_code()}
    assert {"JSON.ARRAPPEND", "HSET", "INCR", "PTTL", "EXISTS"} <= used  # the search works
    with_json, _ = service_rules("users.acl")
    plain, _ = service_rules("users-plain.acl")
    assert used <= with_json
    assert {c for c in used if not c.startswith("JSON.")} <= plain


def test_the_plain_file_is_the_json_file_without_json_commands() -> None:
    with_json = (DEPLOY / "users.acl").read_text().split()
    plain = (DEPLOY / "users-plain.acl").read_text().split()
    assert [rule for rule in with_json if not rule.startswith("+json.")] == plain


@pytest.mark.parametrize("name", ["users.acl", "users-plain.acl"])
def test_every_key_the_service_builds_is_in_its_patterns(name: str) -> None:
    _, patterns = service_rules(name)
    for _, build in inspect.getmembers(keys, inspect.isfunction):
        key = build(*["x"] * len(inspect.signature(build).parameters))
        assert any(fnmatch.fnmatchcase(key, pattern) for pattern in patterns), key
    assert not any(fnmatch.fnmatchcase("other", pattern) for pattern in patterns)
