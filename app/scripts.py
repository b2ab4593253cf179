"""The Lua scripts: loaded once, each with the shared prelude, and their reply codes by name.

Every script is `lua/prelude.lua` followed by `lua/<name>.lua`, so the rules of the stored
document (read, write, append, TTL) live once while each script's SHA still follows its whole
text. Scripts are called with EVALSHA and loaded on NOSCRIPT (app/redis_link.py). The codes
below are the first element of each script's reply, as its contract header states; the store
that calls a script turns them into results or domain errors in one method beside the call.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from enum import IntEnum
from pathlib import Path

LUA_DIR = Path(__file__).resolve().parent.parent / "lua"
NAMES = (
    "create_document",
    "read_session",
    "submit_answer",
    "restore_session",
    "award_progression",
    "update_settings",
    "rotate_refresh",
    "claim_login",
    "rate_limit",
    "set_avatar",
)


@dataclass(frozen=True, slots=True)
class Script:
    name: str
    source: str
    sha: str


def load(name: str) -> Script:
    source = (LUA_DIR / "prelude.lua").read_text() + "\n" + (LUA_DIR / f"{name}.lua").read_text()
    return Script(name, source, hashlib.sha1(source.encode()).hexdigest())


def load_all() -> dict[str, Script]:
    return {name: load(name) for name in NAMES}


class Created(IntEnum):
    """create_document.lua"""

    EXISTS = 0
    CREATED = 1


class Session(IntEnum):
    """read_session.lua and submit_answer.lua"""

    ACCEPTED = 0  # read: the document; submit: the answer was appended
    DUPLICATE = 1  # submit: already answered, the stored answer
    NOT_FOUND = -1
    NOT_IN_SESSION = -2
    WAGER_NOT_ALLOWED = -3
    WAGER_TOO_HIGH = -4
    NOT_YOURS = -5


class Restored(IntEnum):
    """restore_session.lua"""

    CONFLICT = 0  # another session holds the key
    WRITTEN = 1
    MERGED = 2  # it was there already; missing answers appended


class Award(IntEnum):
    """award_progression.lua"""

    AWARDED = 1
    AWARDED_BEFORE = 0
    NO_PLAYER = -1


class Updated(IntEnum):
    """update_settings.lua and set_avatar.lua"""

    UPDATED = 0
    NO_PLAYER = -1


class Rotated(IntEnum):
    """rotate_refresh.lua"""

    ROTATED = 1
    GRACE = 2  # the token it replaced, again within the grace window: the live id is returned
    ENDED = 0  # the family was revoked or expired
    REUSED = -1  # a used token presented again: the family is revoked


class Claimed(IntEnum):
    """claim_login.lua and rate_limit.lua"""

    CLAIMED = 1
    REFUSED = 0  # with the milliseconds until the window ends
