"""The game's own web page, served at `/` with its files under `/static/`, same origin as the API.

Plain ES modules and CSS, no build step: the files in `app/static/` are what the browser runs.
Every page response carries a strict Content-Security-Policy (only this origin's scripts,
styles, images and API; no inline code, no framing) and the usual hardening headers.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.types import Scope

STATIC = Path(__file__).resolve().parent / "static"

CONTENT_SECURITY_POLICY = "; ".join(
    [
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self'",
        "connect-src 'self'",
        "object-src 'none'",
        "frame-ancestors 'none'",
        "base-uri 'none'",
        "form-action 'self'",
    ]
)
HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Permissions-Policy": "camera=(), microphone=(), geolocation=()",
    # The file names carry no content hash (there is no build step), so a browser revalidates
    # each file on use: a 304 against its ETag when unchanged, the new file after a deploy.
    "Cache-Control": "no-cache",
}


class PageFiles(StaticFiles):
    """Starlette's static files (ETag, Last-Modified, 304s), with the page's headers."""

    def file_response(
        self,
        full_path: str | os.PathLike[str],
        stat_result: os.stat_result,
        scope: Scope,
        status_code: int = 200,
    ) -> Response:
        response = super().file_response(full_path, stat_result, scope, status_code)
        response.headers.update(HEADERS)
        return response


FILES = PageFiles(directory=STATIC)


async def index(request: Request) -> Response:
    return await FILES.get_response("index.html", request.scope)


ROUTES: list[BaseRoute] = [
    Route("/", index, methods=["GET"]),
    Mount("/static", app=FILES, name="static"),
]
# Labels for the request metrics and log (the mount puts its app in the scope as `endpoint`).
LABELS: dict[Any, str] = {index: "/", FILES: "/static"}
