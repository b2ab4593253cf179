"""Players' pictures: an upload checked from its bytes, re-encoded, stored in Redis, served.

The original web client uploads one JPEG, PNG or WebP image of at most 5 MB (multipart field
`avatar`) and puts `avatarUrl` straight into an `<img src>`. No uploaded byte is ever served
back: the image is decoded (its type found from its bytes, never from its name or declared
type), cropped to a square, re-encoded as a small WebP without metadata, and only those bytes
are kept, under `avatar:{userId}` in Redis, so every instance serves them. The URL names a
version (a hash of those bytes), so a picture can be cached for good and a new one gets a new
URL.
"""

from __future__ import annotations

import asyncio
import hashlib
import io
import re

from PIL import Image, ImageOps, UnidentifiedImageError

from app.accounts import AccountStore
from app.errors import (
    AvatarNotFound,
    ImageTooLarge,
    InvalidInput,
    Unauthorized,
    UnsupportedMediaType,
)
from app.models import StoredUser
from app.settings import Settings

MAX_UPLOAD_BYTES = 5 * 1024 * 1024  # what the original client offers to upload
# Decoding is refused beyond this many pixels (a 5 MB file can hold a decompression bomb of
# gigapixels); 40 MP is more than any phone camera takes.
MAX_PIXELS = 40_000_000
SIDE = 128  # pixels of the square served: twice the size the clients show it at
FORMATS = ("JPEG", "PNG", "WEBP")
MEDIA_TYPE = "image/webp"
PATH_PREFIX = "/uploads/avatars/"
_FILE = re.compile(r"^(?P<user>[0-9a-f-]{36})\.(?P<version>[0-9a-f]{16})\.webp$")


def reencode(data: bytes) -> bytes:
    """`data` as a SIDE x SIDE WebP of its centre, without metadata; InvalidInput (or its
    subclasses) when it is not a JPEG, PNG or WebP image Pillow can decode within the limits."""
    if len(data) > MAX_UPLOAD_BYTES:
        raise ImageTooLarge(MAX_UPLOAD_BYTES)
    with _open(data) as image:
        if image.width * image.height > MAX_PIXELS:  # known from the header, before decoding
            raise InvalidInput(f"Image has more than {MAX_PIXELS // 1_000_000} megapixels")
        try:
            square = _square(image)
        except Exception as exc:  # Pillow's decoders raise many kinds on damaged data
            raise InvalidInput("The image could not be read: it is damaged") from exc
    out = io.BytesIO()
    square.save(out, "WEBP", quality=85, method=4)
    return out.getvalue()


def _open(data: bytes) -> Image.Image:
    """The image's header read, its format found from its bytes among FORMATS only."""
    try:
        return Image.open(io.BytesIO(data), formats=FORMATS)
    except UnidentifiedImageError:
        raise UnsupportedMediaType("Not a JPEG, PNG or WebP image") from None
    except Exception as exc:
        raise InvalidInput("The image could not be read: it is damaged") from exc


def _square(image: Image.Image) -> Image.Image:
    image.draft("RGB", (SIDE * 2, SIDE * 2))  # JPEG: decode at a fraction of the size
    upright = ImageOps.exif_transpose(image)  # phone photos keep their rotation in EXIF
    square = ImageOps.fit(upright.convert("RGBA"), (SIDE, SIDE), Image.Resampling.LANCZOS)
    square.info.clear()  # no EXIF, ICC profile or text chunk carried over
    return square


def version_of(image: bytes) -> str:
    return hashlib.sha256(image).hexdigest()[:16]


def path_of(user: StoredUser) -> str | None:
    """Where a player's current picture is served, or None before their first upload."""
    return None if user.avatar is None else f"{PATH_PREFIX}{user.id}.{user.avatar}.webp"


class Avatars:
    """The picture routes call one method here each."""

    def __init__(self, accounts: AccountStore, settings: Settings) -> None:
        self.accounts = accounts
        self._base_url = settings.public_base_url.rstrip("/")

    async def upload(self, user_id: str, data: bytes) -> str:
        """Store the player's new picture; returns its path."""
        image = await asyncio.to_thread(reencode, data)  # decoding takes milliseconds of CPU
        version = version_of(image)
        if not await self.accounts.set_avatar(user_id, image, version):
            raise Unauthorized("Account not found: sign up again")
        return f"{PATH_PREFIX}{user_id}.{version}.webp"

    async def image(self, file_name: str) -> bytes:
        """The WebP bytes a picture URL names; AvatarNotFound for any other name, and for a
        version that has been replaced (so a URL's bytes never change: it may be cached)."""
        match = _FILE.match(file_name)
        if match is None:
            raise AvatarNotFound()
        image = await self.accounts.avatar(match["user"])
        if image is None or version_of(image) != match["version"]:
            raise AvatarNotFound()
        return image

    def url(self, path: str, request_base_url: str) -> str:
        """An absolute URL: clients put it straight into `<img src>`, on their own origin."""
        return (self._base_url or request_base_url.rstrip("/")) + path
