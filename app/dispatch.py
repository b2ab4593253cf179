"""The route table's fixed paths dispatched with one dict lookup, ahead of Starlette's router.

Starlette's router tries each route's regex in turn, and wraps every endpoint in two layers of
exception handling (its ExceptionMiddleware, then `request_response`): for the game's busiest
routes, a measurable share of a request's CPU (docs/performance.md, "CPU per request"). Here
a route of the same table whose path has no parameters is found by (method, path), called
with a Request, and its errors answered by the same exception handlers. Everything else (paths
with parameters, a method the path does not take: 405, unknown paths: 404, the page's files)
goes on to the router unchanged.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

Endpoint = Callable[[Request], Awaitable[Response]]
ExceptionHandler = Callable[[Request, Exception], Awaitable[Response]]


class FixedPaths:
    def __init__(
        self,
        app: ASGIApp,
        routes: Sequence[Route],
        handlers: Mapping[type[Exception], ExceptionHandler],
    ) -> None:
        self.app = app
        self.endpoints: dict[tuple[str, str], Endpoint] = {
            (method, route.path): route.endpoint
            for route in routes
            if not route.param_convertors
            for method in route.methods or ()
        }
        self.handlers = handlers
        self.handled = tuple(handlers)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        endpoint = None
        if scope["type"] == "http" and not scope.get("root_path"):  # else the router's job
            endpoint = self.endpoints.get((scope["method"], scope["path"]))
        if endpoint is None:
            await self.app(scope, receive, send)
            return
        scope["endpoint"] = endpoint  # as the router sets it: the request log labels by it
        request = Request(scope, receive, send)
        try:
            response = await endpoint(request)
        except self.handled as exc:
            response = await self._handler(exc)(request, exc)
        await response(scope, receive, send)

    def _handler(self, exc: Exception) -> ExceptionHandler:
        """The handler of the closest class, as Starlette picks it."""
        return next(self.handlers[c] for c in type(exc).__mro__ if c in self.handlers)
