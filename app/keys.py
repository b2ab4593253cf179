"""Every Redis key the service uses, in one place.

A user's keys carry the user id as a hash tag (`{...}`), so the scripts that change several of
them together touch one cluster slot.
"""

from __future__ import annotations


def storage_probe() -> str:
    """Never written: JSON.TYPE of it tells whether the server has the JSON module."""
    return "storage-probe"


def session(session_id: str) -> str:
    return f"session:{session_id}"


def user(user_id: str) -> str:
    return f"user:{{{user_id}}}"


def awards(user_id: str) -> str:
    """Hash sessionId -> "xp:gems": the progression ledger that makes awards exactly-once."""
    return f"awards:{{{user_id}}}"


def award_times(user_id: str) -> str:
    """Sorted set sessionId -> last results call: what keeps the ledger bounded."""
    return f"award-times:{{{user_id}}}"


def email(normalized_email: str) -> str:
    """The unique index email -> user id."""
    return f"email:{normalized_email}"


def refresh(family: str) -> str:
    """A token family's live refresh token (rotated on every refresh). While it exists the
    family's access tokens are valid; logout and reuse detection delete it."""
    return f"refresh:{family}"


def login_attempts(normalized_email: str) -> str:
    """Hash of login attempts for one email in the current window, per client and in all."""
    return f"login:{{{normalized_email}}}"


def rate(client: str, action: str) -> str:
    """A client's uses of an action (create, signup, login) in the current window."""
    return f"rate:{{{client}}}:{action}"


def probe(instance_id: str, tag: str = "") -> str:
    """An instance's heartbeat: written with a TTL by its Redis probe. On a cluster, one per
    primary: `tag` is a hash tag that lands in one of that primary's slots."""
    return f"probe:{instance_id}:{{{tag}}}" if tag else f"probe:{instance_id}"


def avatar(user_id: str) -> str:
    """A player's picture as served (re-encoded WebP bytes), beside their document's slot."""
    return f"avatar:{{{user_id}}}"


# The channel on which instances tell each other that a login ended or a player's settings
# changed, so what they cached of it is dropped (app/accounts.py AccessCache).
INVALIDATIONS = "invalidate:accounts"
