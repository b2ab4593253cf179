"""The application: route table, lifespan (owns the Redis client), error mapping, CORS.

Start it with `uvicorn --factory app.main:create_app`: nothing runs at import time, and tests
build apps with their own settings.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import sys
import time
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from datetime import UTC, datetime
from typing import TextIO, TypedDict

import msgspec
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app import api, openapi, page
from app.accounts import AccountStore
from app.auth import Auth, Sleep
from app.avatars import Avatars
from app.dispatch import ExceptionHandler, FixedPaths
from app.errors import GameError, StorageUnavailable, TooManyAttempts, ValidationFailed, status_of
from app.fallback import FallbackStore
from app.game import Game
from app.metrics import AccessLog, Metrics, RequestLog
from app.models import ErrorBody, FieldError, ValidationErrorBody
from app.questions import QuestionBank
from app.redis_link import RedisLink, RedisMisconfigured, connect
from app.settings import Settings, SettingsError
from app.shutdown import Draining, drain_on_sigterm
from app.store import MemoryStore

log = logging.getLogger("app")


class State(TypedDict):
    game: Game
    auth: Auth
    avatars: Avatars
    metrics: Metrics
    openapi: bytes
    draining: Draining


ROUTES = [
    Route("/api/game/session", api.create_session, methods=["POST"]),
    Route("/api/game/answer", api.submit_answer, methods=["POST"]),
    Route("/api/game/results/{session_id}", api.results, methods=["GET"]),
    Route("/auth/signup", api.signup, methods=["POST"]),
    Route("/auth/login", api.login, methods=["POST"]),
    Route("/auth/refresh", api.refresh, methods=["POST"]),
    Route("/auth/logout", api.logout, methods=["POST"]),
    Route("/api/users/profile", api.profile, methods=["GET"]),
    Route("/api/users/profile/settings", api.update_settings, methods=["PATCH"]),
    Route("/health", api.health, methods=["GET"]),
    Route("/metrics", api.metrics, methods=["GET"]),
    Route("/openapi.json", api.openapi_document, methods=["GET"]),
    Route("/api/game/session/{session_id}", api.session_state, methods=["GET"]),
    Route("/api/users/profile/avatar", api.upload_avatar, methods=["POST"]),
    Route("/uploads/avatars/{file}", api.avatar_image, methods=["GET"]),
]


LOG_FORMAT = "%(levelname)s %(name)s %(message)s"


def configure_logging(level: str) -> logging.StreamHandler[TextIO] | None:
    """Plain `LEVEL logger message` lines on stderr, unless logging is configured already;
    returns the handler it installed (None if it installed none).

    Per the logging HOWTO's "Optimization" advice, no record collects its caller's source line,
    thread or process: with one access line per request those lookups cost about a tenth of
    the answer route's throughput (measured with `python -m bench compare`).
    """
    logging._srcfile = None
    logging.logThreads = False
    logging.logProcesses = False
    logging.logMultiprocessing = False
    logging.getLogger("app").setLevel(level.upper())
    root = logging.getLogger()
    if root.handlers:
        return None
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter(LOG_FORMAT))
    root.addHandler(handler)
    return handler


def create_app(
    settings: Settings | None = None,
    *,
    clock: Callable[[], float] = time.time,
    sleep: Sleep = asyncio.sleep,
    game_clock: Callable[[], float] | None = None,
) -> Starlette:
    """The app for `settings`, or for the environment's: a setting it cannot run with stops
    start-up with one line naming the variable.

    Tests inject `clock` (wall-clock seconds, for tokens), `sleep` (the login slow-down) and
    `game_clock` (when games are created and answers received; `clock` unless given) so nothing
    they check depends on real time.
    """
    try:
        settings = settings or Settings.from_env()
        settings.check()
    except SettingsError as exc:
        raise SystemExit(f"Invalid setting {exc}") from None
    metrics = Metrics(settings.metrics_token, uses_redis=not settings.use_memory_sessions)
    access_log = AccessLog(configure_logging(settings.log_level))

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[State]:
        assert settings is not None
        bank = QuestionBank.load(game_size=settings.questions_per_game)
        if due := bank.overdue(datetime.fromtimestamp(clock(), UTC).date()):
            log.warning(
                "question facts due for review: %s (python -m app.questions)",
                ", ".join(q.id for q in due),
            )
        store: MemoryStore | FallbackStore
        if settings.use_memory_sessions:
            store, accounts = MemoryStore(settings.session_ttl_seconds), AccountStore(None)
        else:
            link = RedisLink(connect(settings), settings, metrics)
            store, accounts = FallbackStore(link, settings, metrics), AccountStore(link)
            await start_or_exit(store)
            await accounts.start()
        log.info("serving %d questions, storage %s", len(bank), store.kind)
        auth = Auth(accounts, settings, clock, sleep)
        draining = Draining()
        state: State = {
            "game": Game(bank, store, auth, accounts, settings, metrics, game_clock or clock),
            "auth": auth,
            "avatars": Avatars(accounts, settings),
            "metrics": metrics,
            "openapi": msgspec.json.encode(openapi.build()),
            "draining": draining,
        }
        undo_drain = drain_on_sigterm(draining)
        try:
            with lean_garbage_collection():
                yield state
        finally:
            await accounts.close()
            undo_drain()
            await store.close()
            auth.close()

    labels = {r.endpoint: r.path for r in ROUTES} | page.LABELS
    middleware = [
        Middleware(StartupErrorInOneLine),
        Middleware(RequestLog, metrics=metrics, routes=labels, access_log=access_log),
        Middleware(CorsOnlyWithOrigin, origin=settings.frontend_url),
        Middleware(FixedPaths, routes=ROUTES, handlers=EXCEPTION_HANDLERS),
    ]
    return Starlette(
        routes=ROUTES + page.ROUTES,
        middleware=middleware,
        exception_handlers=EXCEPTION_HANDLERS,
        lifespan=lifespan,
    )


# Python's default is a young-generation collection every 700 net allocations of container
# objects: every dozen requests here, each one promoting the objects of the requests in flight.
GC_YOUNG_THRESHOLD = 10_000


@contextmanager
def lean_garbage_collection() -> Iterator[None]:
    """While the app serves, the cyclic garbage collector skips the objects made at start-up
    (modules, question bank, app: about 55,000) and runs its young collections less often.

    Measured under load (docs/performance.md, "CPU per request"): the collector took about 26
    µs of the ~150 µs a request cost, most of it full collections that re-scanned start-up's
    objects every 1,500 requests or so; with this, about 1 µs. Reference counting still frees
    everything at once as before; only garbage in reference cycles waits longer (at most
    GC_YOUNG_THRESHOLD new objects between young collections).
    """
    thresholds = gc.get_threshold()
    gc.freeze()
    gc.set_threshold(GC_YOUNG_THRESHOLD, *thresholds[1:])
    try:
        yield
    finally:  # an app built and stopped by a test leaves the collector as it was
        gc.set_threshold(*thresholds)
        gc.unfreeze()


async def start_or_exit(store: FallbackStore) -> None:
    """Start the store; Redis refusing our configuration (TLS, password, ACL) is the operator's
    to fix, not an outage to ride out in degraded mode: start-up stops with one line."""
    try:
        await store.start()
    except RedisMisconfigured as exc:
        await store.close()
        raise SystemExit(str(exc)) from None


class StartupErrorInOneLine:
    """A SystemExit from the lifespan (a configuration the operator must fix) is reported to
    the server as its message alone: uvicorn would print Starlette's traceback around it."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "lifespan":
            await self.app(scope, receive, send)
            return
        failure: list[Message] = []

        async def hold_failure(message: Message) -> None:
            if message["type"] == "lifespan.startup.failed":
                failure.append(message)  # sent below, once the exception is known
            else:
                await send(message)

        try:
            await self.app(scope, receive, hold_failure)
        except BaseException as exc:
            if failure and isinstance(exc, SystemExit):
                failure = [{"type": "lifespan.startup.failed", "message": str(exc.code)}]
            for message in failure:
                await send(message)
            raise


class CorsOnlyWithOrigin:
    """Starlette's CORSMiddleware, for the requests that carry an Origin header.

    Since Starlette 1.x it wraps every response to add `Vary: Origin`, which costs a tenth of an
    answer's time here; requests without Origin (same-origin, servers, load balancers) need
    no CORS headers, and no response of this API is cacheable, so they skip it.
    """

    def __init__(self, app: ASGIApp, /, origin: str) -> None:
        self.app = app
        self.cors = CORSMiddleware(
            app,
            allow_origins=[origin],
            allow_credentials=True,
            allow_methods=["GET", "POST", "PATCH", "OPTIONS"],
            allow_headers=["content-type", "authorization"],
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and any(k == b"origin" for k, _ in scope["headers"]):
            await self.cors(scope, receive, send)
        else:
            await self.app(scope, receive, send)


async def game_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, GameError)
    headers = None
    if isinstance(exc, StorageUnavailable | TooManyAttempts):
        headers = {"Retry-After": str(exc.retry_after_seconds)}
    body: ErrorBody | ValidationErrorBody = ErrorBody(str(exc))
    if isinstance(exc, ValidationFailed):
        errors = [FieldError(field, message) for field, message in exc.errors]
        body = ValidationErrorBody(str(exc), errors)
    return api.json_response(body, status_of(exc), headers)


async def http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    messages = {
        404: "No such route",
        405: f"Method {request.method} is not allowed here",
    }
    message = messages.get(exc.status_code, str(exc.detail))
    return api.json_response(ErrorBody(message), exc.status_code, exc.headers)


EXCEPTION_HANDLERS: dict[type[Exception], ExceptionHandler] = {
    GameError: game_error,
    HTTPException: http_error,
}
