"""The service's one way to Redis: a bounded client, calls batched per event-loop iteration,
the Lua scripts by name, and every call measured and guarded by the circuit breaker.

Both stores (sessions in app/redis_store.py, players in app/accounts.py) call Redis only
through `RedisLink.script` and `RedisLink.command`, so timeouts, the breaker, metrics and the
meaning of each Redis error are decided here once.
"""

from __future__ import annotations

import asyncio
import logging
import math
import ssl
import time
import uuid
from asyncio import Future
from collections.abc import Awaitable, Sequence
from typing import Any, Literal, TypeVar

from redis import exceptions as redis_errors
from redis.asyncio import BlockingConnectionPool, Redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from app import keys, scripts
from app.breaker import CircuitBreaker, State
from app.errors import StorageFull, StorageUnavailable
from app.metrics import Metrics
from app.settings import Settings

log = logging.getLogger("app.storage")

Storage = Literal["json", "string"]
Arg = str | bytes | int | float
T = TypeVar("T")

# Redis did not answer, or answered that it cannot serve now; a client that retries later will
# be served. The breaker counts these, except OOM (StorageFull). Anything else Redis answers is
# a reply, or a bug.
UNREACHABLE = (redis_errors.ConnectionError, redis_errors.TimeoutError)  # LOADING included
REFUSING = (redis_errors.OutOfMemoryError, redis_errors.ReadOnlyError)
REFUSING_PREFIXES = ("MISCONF", "BUSY", "MASTERDOWN")


def unavailable_reason(exc: Exception) -> str | None:
    """Why Redis cannot serve now, or None if `exc` is not such an error."""
    if isinstance(exc, redis_errors.BusyLoadingError):
        return "loading its data"
    if isinstance(exc, UNREACHABLE):
        return "unreachable"
    if isinstance(exc, redis_errors.OutOfMemoryError):
        return "out of memory"
    if isinstance(exc, redis_errors.ReadOnlyError):
        return "read-only (a replica)"
    if isinstance(exc, redis_errors.ResponseError) and str(exc).startswith(REFUSING_PREFIXES):
        return str(exc).split(" ", 1)[0].lower()
    return None


class RedisMisconfigured(Exception):
    """Redis refuses this service's configuration (TLS certificates, password, ACL): the message
    is the one line an operator needs. Not an outage to ride out: start-up stops."""


def misconfiguration(exc: redis_errors.RedisError, address: str) -> str | None:
    """What the operator must fix when `exc` says Redis refuses our configuration, else None."""
    if isinstance(exc, redis_errors.AuthenticationError):
        return f"Redis authentication failed for {address}: {exc} (check REDIS_URL)"
    if isinstance(exc, redis_errors.NoPermissionError):
        return f"Redis ACL on {address}: {exc} (see deploy/redis/users.acl)"
    tls = _ssl_error(exc)
    if isinstance(tls, ssl.SSLCertVerificationError):
        why = tls.verify_message
        return f"Redis TLS: certificate verify failed for {address}: {why} (check REDIS_CA_FILE)"
    if tls is not None and "ALERT" in (tls.reason or ""):  # the server refused our certificate
        return (
            f"Redis TLS: {address} refused this client: {tls.reason} "
            "(check REDIS_CERT_FILE and REDIS_KEY_FILE)"
        )
    return None


def _ssl_error(exc: BaseException) -> ssl.SSLError | None:
    """The TLS error behind a redis-py ConnectionError (raised while handling it)."""
    cause = exc.__cause__ or exc.__context__
    while cause is not None and not isinstance(cause, ssl.SSLError):
        cause = cause.__cause__ or cause.__context__
    return cause


def tls_options(settings: Settings) -> dict[str, str | None]:
    """redis-py's TLS options for a rediss:// URL: a private CA, a client certificate. Without
    REDIS_CA_FILE the system's CAs verify the server. (redis:// and unix:// take none.)"""
    if not settings.redis_url.startswith("rediss://"):
        return {}
    return {
        "ssl_ca_certs": settings.redis_ca_file or None,
        "ssl_certfile": settings.redis_cert_file or None,
        "ssl_keyfile": settings.redis_key_file or None,
    }


def connect(settings: Settings) -> Redis:
    """A client whose every call is bounded: short timeouts, one retry, a pool that waits briefly.

    A blocking pool, because redis-py's default pool raises a ConnectionError the moment it is
    full, which would read as "Redis is down" under a burst of players. Worst case for one call:
    pool wait + (1 + retries) x timeout; the TLS handshake is part of the connect timeout.
    No CLIENT SETINFO on connect (`driver_info=None`): the least-privilege ACL user
    (deploy/redis/) is not allowed it, and Redis 7.0 does not know it.
    """
    timeout = settings.redis_timeout_seconds
    pool = BlockingConnectionPool.from_url(
        settings.redis_url,
        max_connections=settings.redis_max_connections,
        timeout=timeout,  # the longest wait for a free connection
        socket_timeout=timeout,
        socket_connect_timeout=timeout,
        retry=Retry(NoBackoff(), retries=1),
        retry_on_error=[redis_errors.ConnectionError, redis_errors.TimeoutError],
        health_check_interval=0,
        driver_info=None,
        **tls_options(settings),
    )
    return Redis(connection_pool=pool)


class AutoPipeline:
    """Sends the commands that requests issue in the same event-loop iteration to Redis together,
    as one pipeline: one connection checkout, one write and one timeout for the batch instead
    of one each.

    Each call still gets its own reply or error, and a failure of the batch (timeout, lost
    connection) fails every call in it, like separate calls would have failed. The calls are
    independent, so batching changes no outcome; redis-py's per-command overhead was the
    largest part of an answer's CPU (docs/performance.md).
    """

    def __init__(self, client: Redis) -> None:
        self.client = client
        self._pending: list[tuple[tuple[Arg, ...], Future[Any]]] = []
        self._in_flight: set[asyncio.Task[None]] = set()  # strong references until sent

    def call(self, *args: Arg) -> Future[Any]:
        loop = asyncio.get_running_loop()
        future = loop.create_future()
        if not self._pending:
            loop.call_soon(self._flush)
        self._pending.append((args, future))
        return future

    async def drain(self) -> None:
        """Until every call made so far has its reply: the batch waiting for its flush and the
        batches in flight. At shutdown, before the pool closes under them; each batch is
        bounded by the client's timeouts, so this is too."""
        while self._pending or self._in_flight:
            if self._in_flight:
                await asyncio.wait(set(self._in_flight))
            else:
                await asyncio.sleep(0)  # the flush is scheduled: let it run

    def _flush(self) -> None:
        batch, self._pending = self._pending, []
        task = asyncio.ensure_future(self._send(batch))
        self._in_flight.add(task)
        task.add_done_callback(self._in_flight.discard)

    async def _send(self, batch: list[tuple[tuple[Arg, ...], Future[Any]]]) -> None:
        try:
            async with self.client.pipeline(transaction=False) as pipe:
                for args, _ in batch:
                    pipe.execute_command(*args)
                replies = await pipe.execute(raise_on_error=False)
        except redis_errors.RedisError as exc:
            replies = [exc] * len(batch)
        except Exception as exc:
            # The batch as a whole failed below redis-py's own errors (a socket error it let
            # through while a connection died): to each call, that is a lost connection.
            log.warning("Redis batch failed: %r", exc)
            failed = redis_errors.ConnectionError(f"the batch failed: {exc!r}")
            replies = [failed] * len(batch)
        for (_, future), reply in zip(batch, replies, strict=True):
            if future.done():  # its request was cancelled meanwhile
                continue
            if isinstance(reply, Exception):
                future.set_exception(reply)
            else:
                future.set_result(reply)


class RedisLink:
    """Scripts and commands on Redis, each labelled by its operation in the metrics.

    While the breaker is open no call waits on Redis: it fails at once with StorageUnavailable.
    A call that fails because Redis cannot serve (see `unavailable_reason`) counts toward
    opening it; any reply, domain answers included, counts as Redis being fine.
    """

    def __init__(self, client: Redis, settings: Settings, metrics: Metrics) -> None:
        self.client = client
        self.storage: Storage | None = None  # known once Redis has answered
        self.breaker = CircuitBreaker(settings.breaker_failures, self._breaker_changed)
        self.last_latency_seconds: float | None = None
        self.last_trouble = -math.inf  # time.monotonic() of the last failed call or probe
        self.instance_id = uuid.uuid4().hex[:12]
        self._connected = False
        self._metrics = metrics
        self._pipeline = AutoPipeline(client)
        self._scripts = scripts.load_all()
        self._tried = False  # connect() was called: start-up is over
        self._reported: str | None = None  # the misconfiguration logged last

    @property
    def kind(self) -> str:
        """ "redis-json" or "redis" (JSON strings), as /health reports the storage."""
        return "redis-json" if self.storage == "json" else "redis"

    @property
    def usable(self) -> bool:
        return self.storage is not None and not self.breaker.is_open

    async def script(self, name: str, keys: Sequence[str], *args: Arg) -> Any:
        """EVALSHA of a script (its storage appended as the last argument), loading it on
        NOSCRIPT (after a Redis restart or failover)."""
        self._require_usable()
        return await self._guarded(name, self._evalsha(self._scripts[name], keys, args))

    async def command(self, operation: str, *args: Arg) -> Any:
        """One Redis command, batched like the scripts; `operation` labels it in the metrics."""
        self._require_usable()
        return await self._guarded(operation, self._pipeline.call(*args))

    def _require_usable(self) -> None:
        if not self.usable:
            raise StorageUnavailable()

    async def _evalsha(
        self, script: scripts.Script, keys: Sequence[str], args: Sequence[Arg]
    ) -> Any:
        call = ("EVALSHA", script.sha, len(keys), *keys, *args, self.storage or "string")
        try:
            return await self._pipeline.call(*call)
        except redis_errors.NoScriptError:
            await self.client.script_load(script.source)
            return await self._pipeline.call(*call)

    async def _guarded(self, operation: str, call: Awaitable[T]) -> T:
        started = time.perf_counter()
        try:
            result = await call
        except redis_errors.RedisError as exc:
            reason = unavailable_reason(exc)
            if reason is None:
                raise
            self._metrics.redis_errors.labels(operation).inc()
            if isinstance(exc, redis_errors.OutOfMemoryError):
                self._succeeded()  # full, not down: see StorageFull
                raise StorageFull() from exc
            self._failed()
            raise StorageUnavailable() from exc
        finally:
            self.last_latency_seconds = time.perf_counter() - started
            self._metrics.observe_redis(operation, self.last_latency_seconds)
        self._succeeded()
        return result

    # --- connecting and probing -----------------------------------------------------------------

    async def connect(self) -> bool:
        """Detect the storage (once); False while Redis does not answer.

        Redis refusing our configuration (TLS, password, ACL) at start-up, the first attempt,
        raises RedisMisconfigured. On a later attempt (Redis was absent at start-up) it is
        logged once and Redis counts as unreachable: this instance serves already.
        """
        if self.storage is None:
            at_start_up, self._tried = not self._tried, True
            try:
                self.storage = await detect_storage(self.client)
            except redis_errors.RedisError as exc:
                return self._not_connected(exc, at_start_up)
            self._succeeded()
            log.info("session storage: %s", self.kind)
        return True

    def _not_connected(self, exc: redis_errors.RedisError, at_start_up: bool) -> Literal[False]:
        problem = misconfiguration(exc, self._address())
        if problem is None:
            if unavailable_reason(exc) is None:
                raise exc
        elif at_start_up:
            raise RedisMisconfigured(problem) from exc
        elif problem != self._reported:
            log.error("%s", problem)
        self._reported = problem
        self._failed()
        return False

    def _address(self) -> str:
        where = self.client.connection_pool.connection_kwargs
        return str(where.get("path") or f"{where.get('host')}:{where.get('port')}")

    async def probe(self, ttl_ms: int) -> bool:
        """Whether Redis takes writes now; closes the breaker when it does, counts a failure
        when it does not.

        The probe is what the service needs, a write with a TTL (on a key of this instance's
        own, gone `ttl_ms` after the last probe), not a PING: `CLIENT PAUSE WRITE`, a full
        Redis (OOM) and a replica that turned read-only all answer PING while refusing or
        holding writes, and a breaker closed on PING would let requests wait out the timeout
        again. On a replica the probe keeps failing (READONLY), so the breaker stays open and
        the instance serves degraded until REDIS_URL reaches the primary again.
        """
        started = time.perf_counter()
        try:
            await self.client.set(keys.probe(self.instance_id), "1", px=ttl_ms)
        except redis_errors.OutOfMemoryError:
            pass  # full, not down (StorageFull): reads and games in progress still work
        except redis_errors.RedisError as exc:
            if unavailable_reason(exc) is None:
                raise
            self._failed()
            return False
        self.last_latency_seconds = time.perf_counter() - started
        self._succeeded()
        self.breaker.close()
        return True

    def _succeeded(self) -> None:
        self.breaker.record_success()
        if not self._connected:
            self._connected = True
            self._metrics.redis_connected.set(1)

    def _failed(self) -> None:
        self.last_trouble = time.monotonic()
        self._connected = False
        self._metrics.redis_connected.set(0)
        self.breaker.record_failure()

    def troubled_within(self, seconds: float) -> bool:
        """Whether a Redis call or probe failed in the last `seconds`."""
        return time.monotonic() - self.last_trouble < seconds

    async def count_sessions(self, samples: int = 64) -> int:
        """An estimate of the session keys in Redis, for memory planning: DBSIZE times the share
        of session keys among `samples` random keys. One round trip of O(1) commands, the same
        at a million sessions as at ten; its error is about DBSIZE x sqrt(p(1-p)/samples)
        (under 2 % when nearly every key is a session)."""
        size, *picked = await asyncio.gather(
            self.command("count_keys", "DBSIZE"),
            *(self.command("sample_key", "RANDOMKEY") for _ in range(samples)),
        )
        sessions = sum(1 for key in picked if key is not None and key.startswith(b"session:"))
        return round(int(size) * sessions / samples) if picked else 0

    def _breaker_changed(self, state: State) -> None:
        self._metrics.breaker_open.set(1 if state == "open" else 0)
        self._metrics.breaker_transitions.labels(state).inc()
        if state == "open":
            log.warning(
                "Redis unreachable: circuit open, new games go to memory, Redis games get 503"
            )
        else:
            log.warning("Redis answers again: circuit closed")

    async def close(self, drain_seconds: float = 1.0) -> None:
        """Let the calls in flight get their replies (at most `drain_seconds`: a batch waits
        at most pool wait + 2 x timeout, 0.75 s with the defaults), then close the pool."""
        try:
            await asyncio.wait_for(self._pipeline.drain(), drain_seconds)
        except TimeoutError:
            log.warning("Redis calls still in flight after %.1f s: closing anyway", drain_seconds)
        await self.client.aclose()


async def detect_storage(client: Redis) -> Storage:
    """ "json" if the server has the JSON module, else "string" (JSON strings, same scripts)."""
    probe = ("JSON.TYPE", keys.storage_probe())
    try:
        await client.execute_command(*probe)  # type: ignore[no-untyped-call]
    except redis_errors.ResponseError as exc:
        if "unknown command" in str(exc).lower():
            return "string"
        raise
    return "json"
