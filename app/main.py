"""The application: route table, lifespan (owns the Redis client), error mapping."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import TypedDict

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from app import api
from app.accounts import Accounts
from app.auth import Auth
from app.errors import GameError, StorageUnavailable, TooManyAttempts, ValidationFailed, status_of
from app.fallback import FallbackStore
from app.game import Game
from app.metrics import CorsOnlyWithOrigin, Metrics, RequestMetrics
from app.models import ErrorBody, FieldError, ValidationErrorBody
from app.questions import QuestionBank
from app.redis_store import connect
from app.settings import Settings
from app.store import MemoryStore

log = logging.getLogger("app")


class State(TypedDict):
    game: Game
    auth: Auth


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
]


def configure_logging(level: str) -> None:
    """Plain `LEVEL logger message` lines on stderr, unless logging is configured already.

    Per the logging HOWTO's "Optimization" advice, no record collects its caller's source line,
    thread or process: with one access line per request those lookups cost about a tenth of
    the answer route's throughput (measured with `python -m bench compare`).
    """
    logging._srcfile = None
    logging.logThreads = False
    logging.logProcesses = False
    logging.logMultiprocessing = False
    if not logging.getLogger().handlers:
        logging.basicConfig(format="%(levelname)s %(name)s %(message)s")
    logging.getLogger("app").setLevel(level.upper())


def create_app(settings: Settings | None = None) -> Starlette:
    settings = settings or Settings.from_env()
    settings.check()
    metrics = Metrics()

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[State]:
        configure_logging(settings.log_level)
        bank = QuestionBank.load(game_size=settings.questions_per_game)
        store: MemoryStore | FallbackStore
        if settings.use_memory_sessions:
            store = MemoryStore(settings.session_ttl_seconds)
            accounts = Accounts(None)
        else:
            store = FallbackStore(connect(settings), settings, metrics)
            await store.start()
            accounts = Accounts(store)
        log.info("serving %d questions, storage %s", len(bank), store.kind)
        try:
            yield {
                "game": Game(bank, store, settings, metrics, accounts),
                "auth": Auth(accounts, settings),
            }
        finally:
            await store.close()

    middleware = [
        Middleware(RequestMetrics, metrics=metrics, routes={r.endpoint: r.path for r in ROUTES}),
        Middleware(CorsOnlyWithOrigin, origin=settings.frontend_url),
    ]
    return Starlette(
        routes=ROUTES,
        middleware=middleware,
        exception_handlers={
            GameError: game_error,
            HTTPException: http_error,
            Exception: internal_error,
        },
        lifespan=lifespan,
    )


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


async def internal_error(request: Request, exc: Exception) -> Response:
    log.exception("unhandled error on %s %s", request.method, request.url.path)
    return api.json_response(ErrorBody("Internal error; it has been logged"), 500)


app = create_app()
