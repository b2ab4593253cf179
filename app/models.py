"""msgspec schemas: the HTTP bodies, the question bank entries and the stored session document.

Stored documents follow msgspec's schema-evolution rules: a new field gets a default and no field
ever changes type, so a session written by the previous deploy still decodes.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated, Literal

import msgspec
from msgspec import Meta, Struct

QuestionId = Annotated[str, Meta(min_length=1, max_length=64)]
Option = Annotated[int, Meta(ge=0, le=3)]
Seconds = Annotated[float, Meta(ge=0)]
# Wagers are capped by half the score (at most a few hundred points); the bound keeps absurd
# numbers out of Lua, whose numbers are doubles.
Wager = Annotated[int, Meta(ge=0, le=1_000_000)]
Difficulty = Literal["easy", "medium", "hard"]
# A group key names questions that give each other away: the draw never puts two in one game.
GroupKey = Annotated[str, Meta(pattern=r"^[a-z0-9]+(-[a-z0-9]+)*$", max_length=64)]
Category = Literal[
    "voting",
    "elections",
    "congress",
    "executive",
    "judiciary",
    "bill-of-rights",
    "amendments",
    "federalism",
    "civic-participation",
]


# --- question bank ------------------------------------------------------------------------------


class Question(Struct, frozen=True, rename="camel", forbid_unknown_fields=True):
    id: QuestionId
    text: str
    options: Annotated[list[str], Meta(min_length=4, max_length=4)]
    correct_answer: Option
    explanation: str
    difficulty: Difficulty
    topic: str
    topic_category: Category
    group: GroupKey | None = None
    # A fact that law, rules or a state can change: when it was last checked at its source, and
    # the date by which it must be checked again (see the README's "Question bank").
    as_of: date | None = None
    review_by: date | None = None


class PublicQuestion(Struct, frozen=True, rename="camel"):
    """What a player sees before answering: nothing that gives the answer away."""

    id: str
    text: str
    options: list[str]
    difficulty: str
    topic: str
    topic_category: str


# --- requests -----------------------------------------------------------------------------------


class CreateSessionRequest(Struct, forbid_unknown_fields=True, rename="camel"):
    question_ids: Annotated[list[QuestionId], Meta(min_length=1, max_length=20)] | None = None


class AnswerRequest(Struct, forbid_unknown_fields=True, rename="camel"):
    session_id: Annotated[str, Meta(max_length=64)]
    question_id: QuestionId
    selected_option: Option | None
    time_remaining: Seconds
    wager: Wager | None = None


# --- stored session document -------------------------------------------------------------------


class StoredAnswer(Struct, array_like=True, frozen=True):
    """One accepted answer, stored as a JSON array to keep the document lean.

    The Lua scripts read two positions: [1] question_id and [7] total_points (Lua is 1-based).
    New fields may only be appended, with defaults.
    """

    question_id: str
    selected_option: int | None
    response_time: float
    correct: bool
    base_points: int
    speed_bonus: int
    total_points: int
    flagged: bool
    wager: int | None = None


class StoredSession(Struct):
    """The `session:{id}` document: question ids and answers, never copies of the questions."""

    question_ids: list[str] = msgspec.field(name="q")
    created_at: datetime = msgspec.field(name="c")
    answers: list[StoredAnswer] = msgspec.field(default_factory=list, name="a")
    owner: str | None = msgspec.field(default=None, name="u")  # user id; None: anonymous
    # Questions the client chose: a practice game, which never earns progression.
    practice: bool = msgspec.field(default=False, name="p")


class AnswerCandidate(Struct, frozen=True):
    """A scored submission, before the store knows where the question sits in the session.

    The store picks `regular` or `final` by the question's position, checks the wager against
    the stored score, and checks the claimed answer times against the server's clock
    (`rules.timer_is_plausible`), all in the same atomic step; `*_implausible` are the outcomes
    when the clock contradicts the timer.
    """

    question_id: str
    regular: StoredAnswer
    final: StoredAnswer
    wager: int | None
    regular_implausible: StoredAnswer
    final_implausible: StoredAnswer
    received_at: float  # when the server received it, seconds since the epoch


# --- responses ----------------------------------------------------------------------------------


class CreateSessionResponse(Struct, rename="camel"):
    session_id: str
    questions: list[PublicQuestion]
    degraded: bool
    # The time limits of this caller's game (the settings' times the timer multiplier), so a
    # client shows the countdown the server scores against.
    question_seconds: float
    final_question_seconds: float


class AnswerResult(Struct, rename="camel", omit_defaults=True):
    question_id: str
    correct: bool
    correct_answer: int
    explanation: str
    base_points: int
    speed_bonus: int
    total_points: int
    flagged: bool
    wager: int | None = None


class AnswerView(Struct, rename="camel", omit_defaults=True):
    question_id: str
    question_index: int
    selected_option: int | None
    correct: bool
    correct_answer: int
    base_points: int
    speed_bonus: int
    total_points: int
    response_time: float
    flagged: bool
    wager: int | None = None


class FastestAnswer(Struct, rename="camel"):
    question_index: int
    response_time: float
    points: int


class WagerResult(Struct, rename="camel"):
    wager_amount: int
    won: bool
    points_change: int


class Progression(Struct, rename="camel"):
    xp_earned: int
    gems_earned: int


class Results(Struct, rename="camel"):
    session_id: str
    complete: bool
    answers: list[AnswerView]
    total_score: int
    total_base_points: int
    total_speed_bonus: int
    total_correct: int
    total_questions: int
    fastest_answer: FastestAnswer | None
    wager_result: WagerResult | None
    progression: Progression | None
    degraded: bool


class StoreStatus(Struct, rename="camel"):
    storage: str  # redis-json, redis or memory
    redis: str  # connected, disconnected or not-configured
    fallback_mode: bool  # new sessions go to this instance's memory
    fallback_sessions: int
    breaker: str | None = None  # closed or open; None without Redis
    redis_latency_ms: float | None = None  # last Redis round trip


class Health(StoreStatus):
    status: Literal["ok", "degraded", "stopping"] = "ok"  # stopping: answered with a 503
    uptime_seconds: float = 0
    version: str = ""


class ErrorBody(Struct):
    error: str


# --- accounts -----------------------------------------------------------------------------------


class SignupRequest(Struct, forbid_unknown_fields=True):
    email: Annotated[str, Meta(max_length=320)]
    password: Annotated[str, Meta(max_length=256)]
    name: Annotated[str, Meta(max_length=200)]


class LoginRequest(Struct, forbid_unknown_fields=True):
    email: Annotated[str, Meta(max_length=320)]
    password: Annotated[str, Meta(max_length=256)]


class SettingsRequest(Struct, forbid_unknown_fields=True, rename="camel"):
    timer_multiplier: float  # one of TIMER_MULTIPLIERS, checked by the account service


class StoredUser(Struct, rename="camel"):
    """The `user:{id}` document. Counters only ever grow through award_progression.lua."""

    id: str
    email: str
    name: str
    password_hash: str
    created_at: datetime
    total_xp: int = 0
    total_gems: int = 0
    games_played: int = 0
    best_score: int = 0
    total_correct: int = 0
    total_questions: int = 0
    timer_multiplier: float = 1.0
    avatar: str | None = None  # version of the picture at avatar:{id}; None until uploaded


class UserView(Struct):
    id: str
    email: str
    name: str


class FieldError(Struct):
    field: str
    message: str


class ValidationErrorBody(Struct):
    error: str
    errors: list[FieldError]


class SignupResponse(Struct):
    message: str
    user: UserView


class TokenResponse(Struct, rename="camel"):
    access_token: str
    user: UserView


class Profile(Struct, rename="camel"):
    name: str
    email: str
    total_xp: int
    total_gems: int
    games_played: int
    best_score: int
    overall_accuracy: int
    timer_multiplier: float
    avatar_url: str | None = None  # absolute, so a client can put it straight in <img src>


class MessageBody(Struct):
    message: str


# --- resuming a game and avatars ---------------------------------------------------------------


class AnsweredQuestion(Struct, rename="camel", omit_defaults=True):
    """An answered question as the state route shows it: the answer result, with its position."""

    question_id: str
    question_index: int
    selected_option: int | None
    correct: bool
    correct_answer: int
    explanation: str
    base_points: int
    speed_bonus: int
    total_points: int
    flagged: bool
    wager: int | None = None


class SessionState(Struct, rename="camel"):
    """What a client needs to resume a game: the questions, what was answered, and the limits."""

    session_id: str
    questions: list[PublicQuestion]
    answers: list[AnsweredQuestion]
    total_score: int
    max_wager: int
    complete: bool
    degraded: bool
    question_seconds: float
    final_question_seconds: float


class AvatarResponse(Struct, rename="camel"):
    avatar_url: str
