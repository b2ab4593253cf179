"""Leaving the balancer's rotation before stopping.

On SIGTERM uvicorn closes its listening socket and every connection without a request in
progress at once. Behind HAProxy (a new server connection per request) some of those
connections carry a request that uvicorn has accepted but not read yet: it is closed without
an answer, and HAProxy, which must not resend a request that reached an instance, closes the
client's connection (tests/test_scale.py saw 2 to 8 per rolling restart of three instances).

So SIGTERM first makes `/health` answer 503 for DRAIN_SECONDS while the instance keeps serving:
HAProxy's checks (deploy/haproxy.cfg: 2 failures, 500 ms then 250 ms apart) take it out of
rotation within about 0.75 s, so no new request arrives. Then the signal goes on to uvicorn,
which stops as before: requests in flight finish, then the lifespan's shutdown. A second
SIGTERM, and SIGINT (Ctrl-C), stop at once.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import threading
import time
from collections.abc import Callable
from types import FrameType

log = logging.getLogger("app")

# Twice the time HAProxy's checks need to take an instance out (deploy/haproxy.cfg).
DRAIN_SECONDS = 1.5


class Draining:
    """Whether this instance is leaving: /health answers 503 from then on."""

    def __init__(self) -> None:
        self.since: float | None = None

    @property
    def active(self) -> bool:
        return self.since is not None

    def start(self) -> None:
        self.since = time.monotonic()


def drain_on_sigterm(draining: Draining, seconds: float = DRAIN_SECONDS) -> Callable[[], None]:
    """Put the drain in front of the server's own SIGTERM handler (uvicorn installs it before
    the lifespan starts); returns what puts it back. Nothing to do without such a handler (an
    app driven in-process by tests) or outside the main thread."""
    previous = signal.getsignal(signal.SIGTERM)
    if not callable(previous) or threading.current_thread() is not threading.main_thread():
        return lambda: None
    handler = previous
    loop = asyncio.get_running_loop()

    def on_sigterm(signum: int, frame: FrameType | None) -> None:
        if draining.active:
            handler(signum, frame)  # a second SIGTERM: stop now
            return
        draining.start()
        log.warning("SIGTERM: /health answers 503 for %.1f s, then this instance stops", seconds)
        loop.call_soon_threadsafe(loop.call_later, seconds, handler, signum, frame)

    def put_back() -> None:
        signal.signal(signal.SIGTERM, handler)

    signal.signal(signal.SIGTERM, on_sigterm)
    return put_back
