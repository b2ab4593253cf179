"""Every Redis key the service uses, in one place.

A user's keys carry the user id as a hash tag (`{...}`), so the scripts that change several of
them together touch one cluster slot.
"""

from __future__ import annotations


def session(session_id: str) -> str:
    return f"session:{session_id}"


def user(user_id: str) -> str:
    return f"user:{{{user_id}}}"


def awards(user_id: str) -> str:
    """Hash sessionId -> "xp:gems": the progression ledger that makes awards exactly-once."""
    return f"awards:{{{user_id}}}"


def email(normalized_email: str) -> str:
    """The unique index email -> user id."""
    return f"email:{normalized_email}"


def refresh(family: str) -> str:
    """The one live refresh token id of a token family (rotated on every refresh)."""
    return f"refresh:{family}"


def blacklist(token_id: str) -> str:
    """A revoked access token, kept until it would have expired."""
    return f"blacklist:{token_id}"


def login_failures(normalized_email: str) -> str:
    return f"login-failures:{normalized_email}"


def avatar(user_id: str) -> str:
    """A player's picture as served (re-encoded WebP bytes), beside their document's slot."""
    return f"avatar:{{{user_id}}}"
