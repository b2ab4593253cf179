"""The game's own web page: served at `/` with its files, with security and caching headers."""

from __future__ import annotations

import re

import httpx
import pytest

from app.page import STATIC

pytestmark = pytest.mark.parametrize("backend", ["memory"])

SECURITY_HEADERS = {
    "x-content-type-options": "nosniff",
    "referrer-policy": "no-referrer",
}


def assert_page_headers(response: httpx.Response) -> None:
    for name, value in SECURITY_HEADERS.items():
        assert response.headers[name] == value
    policy = dict(
        part.strip().split(" ", 1)
        for part in response.headers["content-security-policy"].split(";")
    )
    assert policy["default-src"] == "'self'"
    assert policy["script-src"] == "'self'"  # no 'unsafe-inline', no other host
    assert policy["style-src"] == "'self'"
    assert policy["frame-ancestors"] == "'none'"
    assert response.headers["cache-control"] == "no-cache"
    assert response.headers["etag"]


async def test_the_page_is_served_at_the_root(api: httpx.AsyncClient) -> None:
    response = await api.get("/")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    assert "<title>Civic Trivia Championship</title>" in response.text
    assert_page_headers(response)


async def test_every_file_it_names_is_served(api: httpx.AsyncClient) -> None:
    page = (await api.get("/")).text
    named = set(re.findall(r'(?:src|href)="(/static/[^"]+)"', page))
    modules = {
        f"/static/{name}"
        for path in STATIC.glob("*.js")
        for name in re.findall(r'from "\./([\w.]+)"', path.read_text())
    }
    assert {"/static/app.js", "/static/style.css"} <= named
    types = {".js": "text/javascript", ".css": "text/css", ".svg": "image/svg+xml"}
    for path in sorted(named | modules):
        response = await api.get(path)
        assert response.status_code == 200, path
        suffix = path[path.rindex(".") :]
        assert response.headers["content-type"].split(";")[0] in {
            types[suffix],
            "application/javascript",
        }, path
        assert_page_headers(response)


async def test_nothing_inline_and_nothing_from_elsewhere(api: httpx.AsyncClient) -> None:
    page = (await api.get("/")).text
    assert "<script>" not in page  # only <script src>, as the policy demands
    assert "style=" not in page
    assert "<style" not in page
    assert not re.search(r"<[^>]*\son\w+=", page)  # no onclick=... handlers
    for path in STATIC.iterdir():
        text = path.read_text()
        assert not re.search(r"(?:https?:)?//[\w.-]+\.\w+", text.replace("www.w3.org", "")), path
        assert "innerHTML" not in text, path  # text goes in with textContent only


async def test_unchanged_files_are_not_sent_again(api: httpx.AsyncClient) -> None:
    first = await api.get("/static/app.js")
    again = await api.get("/static/app.js", headers={"if-none-match": first.headers["etag"]})
    assert again.status_code == 304
    assert again.content == b""


async def test_unknown_files_and_escapes_are_404(api: httpx.AsyncClient) -> None:
    for path in ("/static/nothing.js", "/static/../main.py", "/static/%2e%2e/main.py"):
        response = await api.get(path)
        assert response.status_code == 404, path
        assert response.json()["error"]
    assert (await api.post("/")).status_code == 405
