"""Prometheus metrics, request logs, and the ASGI middleware that records both.

Each app owns its registry (no global state), so tests can build many apps in one process.
"""

from __future__ import annotations

import itertools
import logging
import os
import re
import time
from collections.abc import Mapping
from typing import Any, TextIO

from prometheus_client import CollectorRegistry, Counter, Gauge, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.loop_metrics import Count, LoopCounter, LoopHistogram, Spread

access_log = logging.getLogger("app.access")
error_log = logging.getLogger("app.errors")

REQUEST_ID = re.compile(rb"[A-Za-z0-9._-]{1,64}")
INTERNAL_ERROR = b'{"error":"Internal error; it has been logged"}'
INTERNAL_ERROR_HEADERS = [
    (b"content-type", b"application/json"),
    (b"content-length", str(len(INTERNAL_ERROR)).encode()),
]

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)


class Metrics:
    content_type = CONTENT_TYPE_LATEST

    def __init__(self, token: str = "", uses_redis: bool = True) -> None:
        self.token = token  # what a scraper must send as its Bearer token; "" turns /metrics off
        self.registry = registry = CollectorRegistry()
        # Updated for every request: without prometheus_client's lock (app/loop_metrics.py).
        self.requests = LoopCounter(
            "http_requests",
            "HTTP requests served",
            ["route", "method", "status"],
            registry=registry,
        )
        self.request_latency = LoopHistogram(
            "http_request_duration_seconds",
            "HTTP request latency",
            ["route", "status"],
            buckets=LATENCY_BUCKETS,
            registry=registry,
        )
        self.redis_latency = LoopHistogram(
            "redis_call_duration_seconds",
            "Redis round trip per operation",
            ["operation"],
            buckets=LATENCY_BUCKETS,
            registry=registry,
        )
        self.redis_errors = Counter(
            "redis_errors",
            "Redis calls that failed or timed out",
            ["operation"],
            registry=registry,
        )
        self.redis_connected = Gauge(
            "redis_connected",
            "1 while the last Redis call or probe reached Redis and could write",
            # Not exported by an instance that runs without Redis on purpose (memory-only):
            # its 0 would be an outage to the RedisUnreachable alert.
            registry=registry if uses_redis else None,
        )
        self.session_keys = Gauge(
            "redis_session_keys",
            "Session keys in Redis (an estimate from random samples, refreshed every 15 s)",
            registry=registry,
        )
        self.breaker_open = Gauge(
            "redis_breaker_open", "1 while the Redis circuit breaker is open", registry=registry
        )
        self.breaker_transitions = Counter(
            "redis_breaker_transitions",
            "Circuit breaker state changes",
            ["to"],
            registry=registry,
        )
        self.fallback_sessions = Gauge(
            "fallback_sessions", "Sessions held in this instance's memory", registry=registry
        )
        self.write_backs = Counter(
            "fallback_write_backs",
            "Fallback sessions written back into Redis",
            ["outcome"],
            registry=registry,
        )
        self.sessions_created = Counter(
            "sessions_created", "Game sessions created", ["storage"], registry=registry
        )
        # Exported at 0 from the start, so the first fallback is an increase that an alert
        # (deploy/prometheus/alerts.yml) sees, not a new series.
        self.sessions_created.labels("fallback")
        self.sessions_completed = Counter(
            "sessions_completed",
            "Game sessions whose last question was answered",
            registry=registry,
        )
        self.answers = LoopCounter("answers", "Answers by outcome", ["outcome"], registry=registry)
        self.answers_accepted = self.answers.labels("accepted")
        self.answers_duplicated = self.answers.labels("duplicate")

        # The hot path looks its children up once per label combination (the status as an int,
        # as the server gives it).
        self._request_children: dict[tuple[str, str, int], tuple[Count, Spread]] = {}

    def render(self) -> bytes:
        return generate_latest(self.registry)

    def observe_request(self, route: str, method: str, status: int, seconds: float) -> None:
        key = (route, method, status)
        children = self._request_children.get(key)
        if children is None:
            children = self._request_children[key] = (
                self.requests.labels(route, method, str(status)),
                self.request_latency.labels(route, str(status)),
            )
        children[0].inc()
        children[1].observe(seconds)

    def observe_redis(self, operation: str, seconds: float) -> None:
        self.redis_latency.labels(operation).observe(seconds)


class AccessLog:
    """Each request's line, at INFO on the `app.access` logger.

    Through the logging module a line costs a LogRecord, a lock, level and filter checks and a
    format: several µs of a request's CPU (docs/performance.md, "CPU per request"). So when
    the service configured logging itself (app.main.configure_logging: `handler`, a plain
    stderr handler), the line is formatted once and written to that stream in one call: the
    bytes the handler would write. (The stream is line-buffered, so each line is flushed as the
    handler would flush it; lines of other threads are whole lines too, as the GIL holds for one
    write.) When logging was configured elsewhere (uvicorn's --log-config, pytest), the line
    goes through logging and its handlers, as any other record.
    """

    def __init__(self, handler: logging.StreamHandler[TextIO] | None) -> None:
        direct = handler is not None and not (handler.filters or access_log.filters)
        self.stream = handler.stream if direct and handler is not None else None
        self.enabled = access_log.isEnabledFor(logging.INFO)

    def write(self, method: str, route: str, status: int, seconds: float, request_id: str) -> None:
        if not self.enabled:
            return
        line = f"{method} {route} {status} {seconds * 1000:.1f}ms {request_id}"
        if self.stream is None:
            access_log.info("%s", line)
        else:
            self.stream.write(f"INFO app.access {line}\n")


class RequestLog:
    """Pure ASGI middleware around everything: a request id, one log line and one metric sample
    per request, and the one place an unhandled error is caught.

    Routes are labelled by their template (never the raw path, which holds session ids), read
    from the endpoint the router put in the scope. The request id is the caller's
    `X-Request-ID` when it looks like one (a balancer's), else this process's prefix and a
    counter (cheaper than a UUID per request); it is sent back in `X-Request-ID`.

    An unhandled error is logged once, with the request id and its traceback, and answered with
    a complete 500: the server sees a finished response and keeps the connection, so the
    client's next request on it works. (Starlette's own error middleware would log, re-raise
    for the server to log again, and leave the server to drop the connection.)
    """

    def __init__(
        self, app: ASGIApp, metrics: Metrics, routes: Mapping[Any, str], access_log: AccessLog
    ) -> None:
        self.app = app
        self.metrics = metrics
        self.routes = routes
        self.access_log = access_log
        self._prefix = os.urandom(3).hex()
        self._count = itertools.count(1)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        request_id = self._request_id(scope)
        status = 0

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message["headers"] = [*message.get("headers", []), (b"x-request-id", request_id)]
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        except Exception:
            error_log.exception(
                "unhandled error, request %s: %s %s",
                request_id.decode(),
                scope["method"],
                self.routes.get(scope.get("endpoint"), "unmatched"),  # never the path: ids
            )
            if status == 0:  # nothing sent yet: a whole response keeps the connection usable
                start = {"type": "http.response.start", "status": 500}
                await send_with_id({**start, "headers": INTERNAL_ERROR_HEADERS})
                await send_with_id({"type": "http.response.body", "body": INTERNAL_ERROR})
        finally:
            elapsed = time.perf_counter() - started
            route = self.routes.get(scope.get("endpoint"), "unmatched")
            self.metrics.observe_request(route, scope["method"], status or 500, elapsed)
            self.access_log.write(
                scope["method"], route, status or 500, elapsed, request_id.decode()
            )

    def _request_id(self, scope: Scope) -> bytes:
        headers: list[tuple[bytes, bytes]] = scope["headers"]
        for name, value in headers:
            if name == b"x-request-id" and REQUEST_ID.fullmatch(value):
                return value
        return f"{self._prefix}-{next(self._count)}".encode()
