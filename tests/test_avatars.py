"""Players' pictures: the script on both storages, then the routes the original client calls.

An upload is checked from its bytes, re-encoded (nothing uploaded is served back), stored in
Redis so every instance serves it, and named by a versioned, absolute URL.
"""

from __future__ import annotations

import io
import json
import struct
import uuid
import zlib
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from asgi_lifespan import LifespanManager
from PIL import Image, PngImagePlugin
from redis.asyncio import Redis

from app import keys
from app.main import create_app
from app.settings import Settings
from tests.conftest import make_settings
from tests.test_auth import bearer, login, signup
from tests.test_lua import Lua, put_user

on_redis = pytest.mark.parametrize("backend", ["redis-json", "redis"])


def png(size: tuple[int, int] = (300, 200), **info: str) -> bytes:
    """A PNG with a gradient, and text chunks (metadata that must not survive)."""
    image = Image.linear_gradient("L").resize(size).convert("RGB")
    chunks = PngImagePlugin.PngInfo()
    for key, value in info.items():
        chunks.add_text(key, value)
    out = io.BytesIO()
    image.save(out, "PNG", pnginfo=chunks)
    return out.getvalue()


def image_bytes(kind: str, size: tuple[int, int] = (64, 64)) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", size, (200, 30, 30)).save(out, kind)
    return out.getvalue()


def claiming(data: bytes, width: int, height: int) -> bytes:
    """`data` (a PNG) with its header claiming another size: a decompression bomb's header."""
    ihdr = bytearray(data[8 + 8 : 8 + 8 + 13])
    ihdr[0:8] = struct.pack(">II", width, height)
    crc = struct.pack(">I", zlib.crc32(b"IHDR" + ihdr))
    return data[:16] + bytes(ihdr) + crc + data[8 + 8 + 13 + 4 :]


# --- set_avatar.lua -------------------------------------------------------------------------------


@pytest.fixture(params=["json", "string"])
async def lua(
    request: pytest.FixtureRequest, redis_url: str, plain_redis_url: str
) -> AsyncIterator[Lua]:
    client = Redis.from_url(redis_url if request.param == "json" else plain_redis_url)
    yield Lua(client, request.param)
    await client.aclose()


async def test_set_avatar_script(lua: Lua) -> None:
    user_id = uuid.uuid4().hex
    user_key, avatar_key = keys.user(user_id), keys.avatar(user_id)
    assert await lua.run("set_avatar", [user_key, avatar_key], b"\x00img", "v1") == [-1]
    assert await lua.client.exists(user_key, avatar_key) == 0  # nothing created
    await put_user(lua, user_key)
    assert await lua.run("set_avatar", [user_key, avatar_key], b"\x00img\xff", "v2") == [0]
    assert await lua.client.get(avatar_key) == b"\x00img\xff"
    stored = await lua.document(user_key)
    assert stored["avatar"] == "v2"
    assert stored["timerMultiplier"] == 1.0  # the rest of the document unchanged
    assert await lua.client.pttl(avatar_key) == -1  # like the player's document: no TTL


# --- the routes -----------------------------------------------------------------------------------


@pytest.fixture
async def redis(settings: Settings) -> AsyncIterator[Redis]:
    client = Redis.from_url(settings.redis_url)
    yield client
    await client.aclose()


async def player(api: httpx.AsyncClient) -> tuple[str, str]:
    """(user id, access token) of a new player."""
    created = await signup(api)
    token = await login(api, created["user"]["email"])
    api.cookies.clear()
    return created["user"]["id"], token


async def upload(
    api: httpx.AsyncClient, token: str, data: bytes, name: str = "me.png", kind: str = "image/png"
) -> httpx.Response:
    return await api.post(
        "/api/users/profile/avatar", files={"avatar": (name, data, kind)}, headers=bearer(token)
    )


async def profile(api: httpx.AsyncClient, token: str) -> dict[str, Any]:
    body: dict[str, Any] = (await api.get("/api/users/profile", headers=bearer(token))).json()
    return body


@on_redis
async def test_upload_is_reencoded_and_served(api: httpx.AsyncClient, settings: Settings) -> None:
    user_id, token = await player(api)
    assert (await profile(api, token))["avatarUrl"] is None
    original = png(Comment="secret metadata")
    response = await upload(api, token, original)
    assert response.status_code == 200, response.text
    url = response.json()["avatarUrl"]
    assert url.startswith(f"http://test/uploads/avatars/{user_id}.")
    assert (await profile(api, token))["avatarUrl"] == url

    served = await api.get(url)
    assert served.status_code == 200
    assert served.headers["content-type"] == "image/webp"
    assert served.headers["x-content-type-options"] == "nosniff"
    assert "immutable" in served.headers["cache-control"]
    assert served.content != original
    assert b"secret metadata" not in served.content
    with Image.open(io.BytesIO(served.content)) as image:
        assert (image.format, image.size) == ("WEBP", (128, 128))
        assert not image.getexif()
        assert "icc_profile" not in image.info

    # Another instance on the same Redis serves it too.
    async with LifespanManager(create_app(settings)) as manager:
        transport = httpx.ASGITransport(app=manager.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://other") as other:
            again = await other.get(url.removeprefix("http://test"))
            assert again.status_code == 200
            assert again.content == served.content


@on_redis
async def test_the_type_comes_from_the_bytes(api: httpx.AsyncClient) -> None:
    _, token = await player(api)
    for kind in ("JPEG", "WEBP"):
        response = await upload(api, token, image_bytes(kind), "notes.txt", "text/plain")
        assert response.status_code == 200, (kind, response.text)


@on_redis
async def test_a_new_picture_gets_a_new_url(api: httpx.AsyncClient) -> None:
    _, token = await player(api)
    first = (await upload(api, token, png())).json()["avatarUrl"]
    second = (await upload(api, token, image_bytes("PNG"))).json()["avatarUrl"]
    assert first != second
    assert (await api.get(first)).status_code == 404  # replaced: never other bytes under a URL
    assert (await api.get(second)).status_code == 200
    assert (await profile(api, token))["avatarUrl"] == second


async def test_public_base_url_names_the_host(request: pytest.FixtureRequest) -> None:
    settings = make_settings(request, "redis-json", public_base_url="https://trivia.example.org/")
    async with LifespanManager(create_app(settings)) as manager:
        transport = httpx.ASGITransport(app=manager.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://internal") as api:
            _, token = await player(api)
            url = (await upload(api, token, png())).json()["avatarUrl"]
            assert url.startswith("https://trivia.example.org/uploads/avatars/")
            assert (await profile(api, token))["avatarUrl"] == url


def bad_uploads() -> dict[str, tuple[dict[str, Any], int]]:
    """name -> (request arguments, expected status)."""
    small = png()
    return {
        "not multipart": ({"json": {"avatar": "x"}}, 415),
        "no file in the field": ({"files": {"picture": ("a.png", small, "image/png")}}, 400),
        "field without a file": ({"data": {"avatar": "x"}, "files": {"o": ("o", b"", "")}}, 400),
        "two files": (
            {"files": [("avatar", ("a.png", small, "image/png"))] * 2},
            400,
        ),
        "a GIF": ({"files": {"avatar": ("a.gif", image_bytes("GIF"), "image/gif")}}, 415),
        "text named png": ({"files": {"avatar": ("a.png", b"hello " * 50, "image/png")}}, 415),
        "an SVG": (
            {"files": {"avatar": ("a.svg", b'<svg xmlns="http://www.w3.org/2000/svg"/>', "")}},
            415,
        ),
        "truncated PNG": ({"files": {"avatar": ("a.png", small[:300], "image/png")}}, 400),
        "over 5 MB": (
            {"files": {"avatar": ("a.png", small + b"\0" * (5 * 1024 * 1024), "image/png")}},
            413,
        ),
        "48 megapixels": (
            {"files": {"avatar": ("a.png", claiming(small, 8_000, 6_000), "image/png")}},
            400,
        ),
        "a bomb's header": (
            {"files": {"avatar": ("a.png", claiming(small, 20_000, 20_000), "image/png")}},
            400,
        ),
        "multipart without boundary": (
            {"content": b"x", "headers": {"content-type": "multipart/form-data"}},
            400,
        ),
    }


@on_redis
async def test_bad_uploads_get_4xx_and_change_nothing(api: httpx.AsyncClient, redis: Redis) -> None:
    user_id, token = await player(api)
    url = (await upload(api, token, png())).json()["avatarUrl"]
    stored = await redis.get(keys.avatar(user_id))
    for name, (arguments, status) in bad_uploads().items():
        headers = {**bearer(token), **arguments.pop("headers", {})}
        response = await api.post("/api/users/profile/avatar", headers=headers, **arguments)
        assert response.status_code == status, (name, response.text)
        assert response.json()["error"], name
    assert (await profile(api, token))["avatarUrl"] == url
    assert await redis.get(keys.avatar(user_id)) == stored
    anonymous = await api.post(
        "/api/users/profile/avatar", files={"avatar": ("a.png", png(), "image/png")}
    )
    assert anonymous.status_code == 401


@on_redis
async def test_unknown_pictures_are_404(api: httpx.AsyncClient) -> None:
    user_id = str(uuid.uuid4())
    for name in (f"{user_id}.0123456789abcdef.webp", "nothing", f"{user_id}.webp", "..%2f.env"):
        response = await api.get(f"/uploads/avatars/{name}")
        assert response.status_code == 404, name
        assert json.loads(response.content)["error"]
