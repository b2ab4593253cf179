"""uvicorn's httptools protocol with bounds on the request head: its size and how long it takes.

uvicorn reads a request head of any size (a 50 MB header was read whole, and four such
connections took the process from 52 MB to 328 MB) and waits forever for a client that
trickles its head a byte at a time; it has no setting for either with httptools (its
`--h11-max-incomplete-event-size` bounds only the h11 protocol, which costs more CPU per
request). This subclass adds both, per connection:

- a head larger than HEAD_LIMIT_BYTES gets a 431 and the connection is closed, after at most
  that many bytes were read;
- a head not complete HEAD_TIMEOUT_SECONDS after the connection opened, or after its first
  byte arrived on a kept-alive connection, gets a 408 and the connection is closed. (uvicorn's
  own keep-alive timeout still closes a connection idle between requests.)

Run with `uvicorn --http app.http_limits:BoundedHttpToolsProtocol` (./serve and the Dockerfile
do). The body is bounded by the app (app/api.py), not here.
"""

from __future__ import annotations

import asyncio

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

HEAD_LIMIT_BYTES = 32 * 1024
HEAD_TIMEOUT_SECONDS = 10.0


def refusal(status: str, message: str) -> bytes:
    body = f'{{"error":"{message}"}}'.encode()
    return (
        f"HTTP/1.1 {status}\r\ncontent-type: application/json\r\n"
        f"content-length: {len(body)}\r\nconnection: close\r\n\r\n"
    ).encode() + body


TOO_LARGE = refusal("431 Request Header Fields Too Large", "Request head over 32 KiB")
TOO_SLOW = refusal("408 Request Timeout", "Request head not received within 10 s")


class BoundedHttpToolsProtocol(HttpToolsProtocol):
    """One timer per connection, not one per request: it is armed when the connection opens
    and, each time it fires, either refuses a head begun HEAD_TIMEOUT_SECONDS ago or re-arms
    itself for when the head in progress (or the next one) would run out. A request pays
    only for noting when its head began, which a timer set and cancelled per request cost
    4 % of a request's CPU (docs/performance.md, "CPU per request")."""

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._head_bytes = 0  # read since the head now awaited began
        self._awaiting_head = True
        # When the head in progress began (the connection's opening for its first request),
        # None between a head's end and the next one's first byte.
        self._head_began: float | None = self.loop.time()
        self._head_timer: asyncio.TimerHandle | None = self.loop.call_at(
            self._head_began + HEAD_TIMEOUT_SECONDS, self._check_head
        )

    def connection_lost(self, exc: Exception | None) -> None:
        self._stop_head_timer()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if not self._awaiting_head:
            super().data_received(data)
            return
        room = HEAD_LIMIT_BYTES - self._head_bytes
        self._head_bytes += len(data)
        if len(data) <= room:
            super().data_received(data)
            return
        # Only what fits is parsed; the rest only if that much completed the head.
        super().data_received(data[:room])
        if self._awaiting_head:
            self._refuse(TOO_LARGE)
        elif not self.transport.is_closing():
            super().data_received(data[room:])

    def on_message_begin(self) -> None:
        super().on_message_begin()
        if self._head_began is None:  # a kept-alive connection's next request
            self._head_began = self.loop.time()

    def on_headers_complete(self) -> None:
        self._awaiting_head, self._head_began = False, None
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        super().on_message_complete()
        self._awaiting_head, self._head_bytes = True, 0

    def _check_head(self) -> None:
        now = self.loop.time()
        if self._head_began is not None and now - self._head_began >= HEAD_TIMEOUT_SECONDS:
            self._refuse(TOO_SLOW)
            return
        began = now if self._head_began is None else self._head_began
        self._head_timer = self.loop.call_at(began + HEAD_TIMEOUT_SECONDS, self._check_head)

    def _stop_head_timer(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def _refuse(self, response: bytes) -> None:
        """Answer and close; only close while a response to an earlier request is being sent
        (a pipelined request), so the two never interleave."""
        self._stop_head_timer()
        if self.transport.is_closing():
            return
        if self.cycle is None or self.cycle.response_complete:
            self.transport.write(response)
        self.transport.close()
