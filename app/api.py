"""HTTP handlers: decode, call one service (the game or the accounts), encode. Nothing else."""

from __future__ import annotations

import hmac
from collections.abc import AsyncGenerator, Mapping
from typing import Any, TypeVar

import msgspec
from starlette.datastructures import UploadFile
from starlette.formparsers import MultiPartException, MultiPartParser
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response

from app import avatars
from app.auth import REFRESH_COOKIE, Auth, Caller, Issued, user_view
from app.avatars import Avatars
from app.errors import (
    BodyTooLarge,
    ImageTooLarge,
    InvalidInput,
    NotFound,
    Unauthorized,
    UnsupportedMediaType,
)
from app.game import Game
from app.metrics import Metrics
from app.models import (
    AnswerRequest,
    AvatarResponse,
    CreateSessionRequest,
    ErrorBody,
    LoginRequest,
    MessageBody,
    Profile,
    SettingsRequest,
    SignupRequest,
    SignupResponse,
)
from app.shutdown import Draining

T = TypeVar("T")
MAX_BODY_BYTES = 64 * 1024

_encode = msgspec.json.Encoder().encode
_decode_create = msgspec.json.Decoder(CreateSessionRequest).decode
_decode_answer = msgspec.json.Decoder(AnswerRequest).decode
_decode_signup = msgspec.json.Decoder(SignupRequest).decode
_decode_login = msgspec.json.Decoder(LoginRequest).decode
_decode_settings = msgspec.json.Decoder(SettingsRequest).decode


def json_response(
    body: Any, status_code: int = 200, headers: Mapping[str, str] | None = None
) -> Response:
    return Response(_encode(body), status_code, headers, media_type="application/json")


# The helpers below read the lifespan's state and the headers straight from the ASGI scope:
# Starlette's `request.state` and `request.headers` build an object per request and lower-case
# and encode the name on every lookup, about 3 µs of a game request's CPU (docs/performance.md,
# "CPU per request"). Header names in the scope are lower-case bytes already.


def game_of(request: Request) -> Game:
    game: Game = request.scope["state"]["game"]
    return game


def auth_of(request: Request) -> Auth:
    auth: Auth = request.scope["state"]["auth"]
    return auth


def header(request: Request, name: bytes) -> str | None:
    """The first value of the header `name` (lower-case), as Starlette decodes it."""
    headers: list[tuple[bytes, bytes]] = request.scope["headers"]
    for key, value in headers:
        if key == name:
            return value.decode("latin-1")
    return None


async def read_body(request: Request, limit: int = MAX_BODY_BYTES) -> bytes:
    """The body, refused as soon as it is known to exceed `limit` (never read whole).

    Done here rather than with Starlette's body-limit middleware, whose 413 is plain text and
    could not carry the `{"error": ...}` body every client of this API expects.
    """
    length = header(request, b"content-length") or ""
    if length.isdigit() and int(length) > limit:
        raise BodyTooLarge(limit)
    chunks, size = [], 0
    while True:  # ASGI receive directly: Request.stream's async generator costs more
        message = await request.receive()
        if message["type"] == "http.disconnect":
            raise ClientDisconnect()
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise BodyTooLarge(limit)
        chunks.append(chunk)
        if not message.get("more_body", False):
            return chunks[0] if len(chunks) == 1 else b"".join(chunks)


async def decode(request: Request, decoder: Any, empty: T | None = None) -> T:
    """The body decoded into its Struct. A body must be JSON with that content type: a form or
    text/plain body could be posted cross-site without a preflight."""
    body = await read_body(request)
    if not body.strip() and empty is not None:
        return empty
    media_type = (header(request, b"content-type") or "").split(";", 1)[0].strip().lower()
    if media_type != "application/json":
        raise UnsupportedMediaType()
    try:
        decoded: T = decoder(body)
    except (msgspec.DecodeError, UnicodeDecodeError) as exc:
        raise InvalidInput(f"Invalid request body: {exc}") from exc
    return decoded


def caller(request: Request) -> Caller:
    client = request.scope.get("client")
    address = client[0] if client else ""
    authorization = header(request, b"authorization")
    if authorization is None and header(request, b"cookie") is None:
        return Caller(address)  # anonymous: the common case, without parsing cookies
    return Caller(address, authorization, REFRESH_COOKIE in request.cookies)


# --- game ---------------------------------------------------------------------------------------


async def create_session(request: Request) -> Response:
    body = await decode(request, _decode_create, empty=CreateSessionRequest())
    created = await game_of(request).create_session(body.question_ids, caller(request))
    return json_response(created, 201)


async def submit_answer(request: Request) -> Response:
    body: AnswerRequest = await decode(request, _decode_answer)
    return json_response(await game_of(request).answer(body, caller(request)))


async def results(request: Request) -> Response:
    session_id = request.path_params["session_id"]
    return json_response(await game_of(request).results(session_id, caller(request)))


async def session_state(request: Request) -> Response:
    session_id = request.path_params["session_id"]
    return json_response(await game_of(request).state(session_id, caller(request)))


# --- accounts -----------------------------------------------------------------------------------


def with_refresh_cookie(response: Response, auth: Auth, token: str | None) -> Response:
    """Set (or, with None, clear) the HttpOnly refresh-token cookie. Responses that carry
    tokens are never stored by a cache."""
    response.headers["cache-control"] = "no-store"
    if token is None:
        response.delete_cookie(
            REFRESH_COOKIE, path="/", secure=auth.cookie.secure, httponly=True, samesite="strict"
        )
    else:
        response.set_cookie(
            REFRESH_COOKIE,
            token,
            max_age=auth.cookie.max_age,
            path="/",
            secure=auth.cookie.secure,
            httponly=True,
            samesite="strict",
        )
    return response


async def signup(request: Request) -> Response:
    body: SignupRequest = await decode(request, _decode_signup)
    user = await auth_of(request).signup(body, caller(request))
    created = SignupResponse(message="Account created: log in to play", user=user_view(user))
    return json_response(created, 201)


async def login(request: Request) -> Response:
    body: LoginRequest = await decode(request, _decode_login)
    auth = auth_of(request)
    issued: Issued = await auth.login(body, caller(request))
    return with_refresh_cookie(json_response(issued.body), auth, issued.refresh_token)


async def refresh(request: Request) -> Response:
    auth = auth_of(request)
    try:
        issued = await auth.refresh(request.cookies.get(REFRESH_COOKIE))
    except Unauthorized as exc:
        # A dead cookie would keep turning game calls into 401s: clear it with the refusal.
        return with_refresh_cookie(json_response(ErrorBody(str(exc)), 401), auth, None)
    return with_refresh_cookie(json_response(issued.body), auth, issued.refresh_token)


async def logout(request: Request) -> Response:
    auth = auth_of(request)
    await auth.logout(request.headers.get("authorization"))
    return with_refresh_cookie(json_response(MessageBody("Logged out")), auth, None)


async def profile(request: Request) -> Response:
    found = await auth_of(request).profile(request.headers.get("authorization"))
    return json_response(with_absolute_avatar(request, found))


async def update_settings(request: Request) -> Response:
    auth = auth_of(request)
    identity = await auth.authenticate(request.headers.get("authorization"))  # 401 before 400
    body: SettingsRequest = await decode(request, _decode_settings)
    updated = await auth.update_settings(identity, body.timer_multiplier)
    return json_response(with_absolute_avatar(request, updated))


# --- avatars ------------------------------------------------------------------------------------

# Room for the multipart framing around the one image (boundaries, part headers, small fields).
MULTIPART_OVERHEAD_BYTES = 16 * 1024
AVATAR_HEADERS = {
    # The URL names the picture's version, so its bytes never change.
    "Cache-Control": "public, max-age=31536000, immutable",
    "X-Content-Type-Options": "nosniff",
    "Content-Security-Policy": "default-src 'none'; sandbox",
}


def avatars_of(request: Request) -> Avatars:
    found: Avatars = request.state.avatars
    return found


def with_absolute_avatar(request: Request, found: Profile) -> Profile:
    """The profile with its avatar path made an absolute URL (PUBLIC_BASE_URL, or this
    request's own), as the original client puts it straight into <img src> on its origin."""
    if found.avatar_url is None:
        return found
    url = avatars_of(request).url(found.avatar_url, str(request.base_url))
    return msgspec.structs.replace(found, avatar_url=url)


async def read_upload(request: Request, field: str, limit: int) -> bytes:
    """The bytes of the one file sent in `field` of a multipart/form-data body of at most
    `limit` bytes of file (the body is refused as soon as it is known to be larger)."""
    if not request.headers.get("content-type", "").lower().startswith("multipart/form-data"):
        raise UnsupportedMediaType(f"Send the image as multipart/form-data, field {field!r}")
    try:
        body = await read_body(request, limit + MULTIPART_OVERHEAD_BYTES)
    except BodyTooLarge:
        raise ImageTooLarge(limit) from None

    async def whole() -> AsyncGenerator[bytes, None]:
        yield body

    parser = MultiPartParser(request.headers, whole(), max_files=1, max_fields=8)
    try:
        form = await parser.parse()
    except MultiPartException as exc:
        raise InvalidInput(f"Invalid multipart body: {exc.message}") from None
    try:
        upload = form.get(field)
        if not isinstance(upload, UploadFile):
            raise InvalidInput(f"Send one image file in the multipart field {field!r}")
        return await upload.read()
    finally:
        await form.close()


async def upload_avatar(request: Request) -> Response:
    identity = await auth_of(request).authenticate(request.headers.get("authorization"))
    image = await read_upload(request, "avatar", avatars.MAX_UPLOAD_BYTES)
    found = avatars_of(request)
    path = await found.upload(identity.user_id, image)
    return json_response(AvatarResponse(avatar_url=found.url(path, str(request.base_url))))


async def avatar_image(request: Request) -> Response:
    image = await avatars_of(request).image(request.path_params["file"])
    return Response(image, media_type=avatars.MEDIA_TYPE, headers=AVATAR_HEADERS)


# --- operations ---------------------------------------------------------------------------------


async def health(request: Request) -> Response:
    """200 while the process serves, degraded or not: a 503 during a Redis outage would make a
    load balancer drop every instance at once. 503 once the instance is stopping (SIGTERM), so
    the balancer takes it out of rotation first (app/shutdown.py). Reads state only; never
    waits on Redis."""
    body = game_of(request).health()
    draining: Draining = request.state.draining
    if draining.active:
        body.status = "stopping"
        return json_response(body, 503)
    return json_response(body)


async def openapi_document(request: Request) -> Response:
    document: bytes = request.state.openapi
    return Response(document, media_type="application/json")


async def metrics(request: Request) -> Response:
    """Prometheus text format, for a scraper that sends `Authorization: Bearer METRICS_TOKEN`
    (Prometheus' `authorization` scrape setting); off (404) while METRICS_TOKEN is unset."""
    metrics: Metrics = request.state.metrics
    if not metrics.token:
        raise NotFound("Metrics are off: set METRICS_TOKEN and scrape with it as a Bearer token")
    sent = request.headers.get("authorization", "").removeprefix("Bearer ").strip()
    if not hmac.compare_digest(sent.encode(), metrics.token.encode()):
        raise Unauthorized("Send Authorization: Bearer <METRICS_TOKEN>")
    return Response(metrics.render(), media_type=metrics.content_type)
