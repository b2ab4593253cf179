"""Domain exceptions. They know nothing of HTTP; `STATUS` maps them to status codes in one place."""

from __future__ import annotations


class GameError(Exception):
    """Base class: the message is shown to the client, so it must be one a person can act on."""


class InvalidInput(GameError):
    pass


class BodyTooLarge(InvalidInput):
    def __init__(self, limit_bytes: int) -> None:
        super().__init__(f"Request body is larger than {limit_bytes // 1024} KiB")


class NotFound(GameError):
    pass


class SessionNotFound(NotFound):
    def __init__(self) -> None:
        super().__init__("Game session not found: it never existed or has expired")


class ValidationFailed(InvalidInput):
    """Several fields are wrong at once: `errors` lists each, as the web client's forms expect."""

    def __init__(self, errors: list[tuple[str, str]]) -> None:
        super().__init__("Please correct the highlighted fields")
        self.errors = errors


class Unauthorized(GameError):
    pass


class RefreshReused(Unauthorized):
    def __init__(self) -> None:
        super().__init__("Refresh token reused: every session of this login was revoked")


class LoginEnded(Unauthorized):
    def __init__(self) -> None:
        super().__init__("Session expired or logged out: log in again")


class Forbidden(GameError):
    pass


class NotYourSession(Forbidden):
    def __init__(self) -> None:
        super().__init__("This game belongs to another player: sign in as that player")


class EmailTaken(GameError):
    def __init__(self) -> None:
        super().__init__("An account with this email already exists: log in instead")


class TooManyAttempts(GameError):
    """A limit on a client's (or an email's) attempts was reached; retry after the window."""

    def __init__(self, what: str, retry_after_seconds: int) -> None:
        super().__init__(f"{what}: try again in {retry_after_seconds} s")
        self.retry_after_seconds = retry_after_seconds


class UnsupportedMediaType(InvalidInput):
    """A body in a form the route does not take (not JSON, not multipart, not an image it
    accepts)."""

    def __init__(
        self, message: str = "Send the body as JSON with Content-Type: application/json"
    ) -> None:
        super().__init__(message)


class QuestionNotInSession(InvalidInput):
    def __init__(self, question_id: str) -> None:
        super().__init__(f"Question {question_id!r} is not part of this game session")


class WagerNotAllowed(InvalidInput):
    def __init__(self) -> None:
        super().__init__("A wager is only allowed on the final question")


class WagerTooHigh(InvalidInput):
    def __init__(self, max_wager: int) -> None:
        super().__init__(f"Wager is above the limit: at most {max_wager} (half your current score)")
        self.max_wager = max_wager


class ImageTooLarge(InvalidInput):
    def __init__(self, limit_bytes: int) -> None:
        super().__init__(f"Image is larger than {limit_bytes // (1024 * 1024)} MB")


class AvatarNotFound(NotFound):
    def __init__(self) -> None:
        super().__init__("No such picture: the player has none or has replaced it")


class StorageUnavailable(GameError):
    """The store cannot answer right now. Every write is idempotent, so a retry is safe."""

    retry_after_seconds = 2

    def __init__(self, message: str = "Game storage is temporarily unavailable; retry shortly"):
        super().__init__(message)


class StorageFull(StorageUnavailable):
    """Redis is out of memory (maxmemory, noeviction): it refuses a script whose first write
    would grow it, such as a new game (which then goes to memory), while reads and answers to
    games in progress still work (a script that has written once is let through). So it is
    not an outage: the breaker stays closed."""

    def __init__(self) -> None:
        super().__init__("Game storage is full right now; retry shortly")


class Busy(StorageUnavailable):
    """Too much password hashing is waiting already: refused at once rather than queued."""

    retry_after_seconds = 1

    def __init__(self) -> None:
        super().__init__("The service is busy checking passwords; retry in a moment")


STATUS: dict[type[GameError], int] = {
    BodyTooLarge: 413,
    ImageTooLarge: 413,
    UnsupportedMediaType: 415,
    InvalidInput: 400,
    Unauthorized: 401,
    Forbidden: 403,
    NotFound: 404,
    EmailTaken: 409,
    TooManyAttempts: 429,
    StorageUnavailable: 503,
}


def status_of(error: GameError) -> int:
    for cls in type(error).__mro__:
        if cls in STATUS:
            return STATUS[cls]
    return 500
