"""The service's one way to Redis: a bounded client, calls batched per event-loop iteration,
the Lua scripts by name, and every call measured and guarded by the circuit breaker.

Both stores (sessions in app/redis_store.py, players in app/accounts.py) call Redis only
through `RedisLink.script` and `RedisLink.command`, so timeouts, the breaker, metrics and the
meaning of each Redis error are decided here once.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import itertools
import logging
import math
import ssl
import time
import uuid
from asyncio import Future
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Literal, TypeVar
from urllib.parse import urlsplit

import hiredis
from redis import exceptions as redis_errors
from redis.asyncio import BlockingConnectionPool, Redis, RedisCluster
from redis.asyncio.cluster import ClusterNode, PipelineCommand
from redis.asyncio.connection import (
    AbstractConnection,
    Connection,
    SSLConnection,
    UnixDomainSocketConnection,
    parse_url,
)
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.crc import key_slot
from redis.typing import EncodableT

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
# A Redis Cluster in the middle of a change (a failover, a slot moving, its layout not known
# yet); the cluster client has retried already.
CLUSTER_CHANGING = (
    redis_errors.ClusterDownError,  # MASTERDOWN included
    redis_errors.TryAgainError,
    redis_errors.AskError,  # MOVED included
    redis_errors.RedisClusterException,  # a slot no node serves now
)


def unavailable_reason(exc: Exception) -> str | None:
    """Why Redis cannot serve now, or None if `exc` is not such an error."""
    if isinstance(exc, redis_errors.BusyLoadingError):
        return "loading its data"
    if isinstance(exc, CLUSTER_CHANGING):
        return "a cluster slot is moving or failing over"
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


def misconfiguration(exc: Exception, address: str) -> str | None:
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


Client = Redis | RedisCluster


def connect(settings: Settings) -> Client:
    """A client whose every call is bounded: short timeouts, one retry, a pool that waits briefly.

    A blocking pool, because redis-py's default pool raises a ConnectionError the moment it is
    full, which would read as "Redis is down" under a burst of players. Worst case for one call:
    pool wait + (1 + retries) x timeout; the TLS handshake is part of the connect timeout.
    No CLIENT SETINFO on connect (`driver_info=None`): the least-privilege ACL user
    (deploy/redis/) is not allowed it, and Redis 7.0 does not know it.

    With REDIS_CLUSTER=true, a RedisCluster that learns the nodes from the one REDIS_URL names,
    routes each key to the node serving its slot and follows MOVED/ASK. Its nodes' pools do not
    wait (a full one fails at once): they are sized REDIS_MAX_CONNECTIONS per node, and the
    auto-pipeline needs one connection per node and batch.
    """
    timeout = settings.redis_timeout_seconds
    bounds: dict[str, Any] = {
        "socket_timeout": timeout,
        "socket_connect_timeout": timeout,
        "retry": Retry(NoBackoff(), retries=1),
        "retry_on_error": [redis_errors.ConnectionError, redis_errors.TimeoutError],
        "health_check_interval": 0,
        "driver_info": None,
        **tls_options(settings),
    }
    if settings.redis_cluster:
        return RedisCluster.from_url(
            settings.redis_url, max_connections=settings.redis_max_connections, **bounds
        )
    # BlockingConnectionPool.from_url, with the connection class of the URL's scheme swapped
    # for the same class packing with hiredis.
    options = {**bounds, **parse_url(settings.redis_url)}
    options["connection_class"] = HIREDIS_PACKING[options.get("connection_class", Connection)]
    pool = BlockingConnectionPool(
        max_connections=settings.redis_max_connections,
        timeout=timeout,  # the longest wait for a free connection
        **options,
    )
    return Redis(connection_pool=pool)


def pack_with_hiredis(self: AbstractConnection, *args: EncodableT) -> list[bytes]:
    """A command packed by hiredis (C), for the connections of `connect()`.

    redis-py's asyncio connection packs each argument in Python (its Encoder, then a join per
    argument): about 4 % of a request's CPU (docs/performance.md, "CPU per request"). Its
    sync client packs with hiredis when it is installed (HiredisRespSerializer); this is the
    same for the asyncio one. The bytes are the same for every type both take (str as UTF-8,
    floats as repr()). A command name with a space ("SCRIPT LOAD", which redis-py splits) or
    an argument hiredis does not take goes to redis-py's own packing, which packs it or raises
    its DataError: what a call gets back is unchanged."""
    if isinstance(args[0], str) and " " not in args[0]:
        try:
            return [hiredis.pack_command(args)]  # type: ignore[arg-type]  # its stub: 1-tuples
        except TypeError:
            pass
    return AbstractConnection.pack_command(self, *args)


class HiredisConnection(Connection):
    pack_command = pack_with_hiredis


class HiredisSSLConnection(SSLConnection):
    pack_command = pack_with_hiredis


class HiredisUnixConnection(UnixDomainSocketConnection):
    pack_command = pack_with_hiredis


HIREDIS_PACKING: dict[type[AbstractConnection], type[AbstractConnection]] = {
    Connection: HiredisConnection,
    SSLConnection: HiredisSSLConnection,
    UnixDomainSocketConnection: HiredisUnixConnection,
}


async def stop_task(task: asyncio.Task[None] | None) -> None:
    """Cancel a background task of Redis calls and wait until it has ended. Cancelled again
    until it ends: a cancellation that lands inside redis-py's cluster client can come out as
    a connection error, which such a loop rides out like any other."""
    if task is None:
        return
    while not task.done():
        task.cancel()
        await asyncio.wait({task}, timeout=0.5)


class AutoPipeline:
    """Sends the commands that requests issue in the same event-loop iteration to Redis together,
    as one pipeline: one connection checkout, one write and one timeout for the batch instead
    of one each.

    Each call still gets its own reply or error, and a failure of the batch (timeout, lost
    connection) fails every call in it, like separate calls would have failed. The calls are
    independent, so batching changes no outcome; redis-py's per-command overhead was the
    largest part of an answer's CPU (docs/performance.md).
    """

    def __init__(self, client: Client) -> None:
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
        replies = await self._replies([args for args, _ in batch])
        for (_, future), reply in zip(batch, replies, strict=True):
            if future.done():  # its request was cancelled meanwhile
                continue
            if isinstance(reply, Exception):
                future.set_exception(reply)
            else:
                future.set_result(reply)

    async def _replies(self, calls: list[tuple[Arg, ...]]) -> list[Any]:
        """Each call's reply or error, the batch sent as one pipeline."""
        assert isinstance(self.client, Redis)
        try:
            async with self.client.pipeline(transaction=False) as pipe:
                for args in calls:
                    pipe.execute_command(*args)
                return await pipe.execute(raise_on_error=False)
        except redis_errors.RedisError as exc:
            return [exc] * len(calls)
        except Exception as exc:
            return [batch_failed(exc)] * len(calls)


class ClusterAutoPipeline(AutoPipeline):
    """The auto-pipeline on a Redis Cluster: the batch is grouped by the node serving each
    call's key and sent as one pipeline per node, in parallel. A call that comes back
    redirected (MOVED, ASK: a slot moved, a failover), refused for the moment (TRYAGAIN,
    CLUSTERDOWN) or lost with its connection is sent again on its own through the cluster client,
    which follows the redirect or refreshes the cluster's layout first. Every call here is safe
    to send twice (the scripts are idempotent by design, README "Redis key layout")."""

    async def _replies(self, calls: list[tuple[Arg, ...]]) -> list[Any]:
        assert isinstance(self.client, RedisCluster)
        replies: list[Any] = [RESEND] * len(calls)
        by_node: dict[str, tuple[ClusterNode, list[PipelineCommand]]] = {}
        for position, args in enumerate(calls):
            try:
                node = self.client.get_node_from_key(str(key_of(args)))
            except redis_errors.RedisClusterException:
                continue  # its slot is not covered now: the cluster client will find out
            if node is not None:
                by_node.setdefault(node.name, (node, []))[1].append(
                    PipelineCommand(position, *args)
                )
        await asyncio.gather(
            *(self._on_node(node, cmds, replies) for node, cmds in by_node.values())
        )
        again = [i for i, reply in enumerate(replies) if reply is RESEND or resend(reply)]
        for position, reply in zip(
            again, await asyncio.gather(*(self._alone(calls[i]) for i in again)), strict=True
        ):
            replies[position] = reply
        return replies

    @staticmethod
    async def _on_node(
        node: ClusterNode, commands: list[PipelineCommand], replies: list[Any]
    ) -> None:
        try:
            await node.execute_pipeline(commands)
        except Exception:  # the node's connection failed: each call is sent again alone
            return
        for command in commands:
            replies[command.position] = command.result

    async def _alone(self, args: tuple[Arg, ...]) -> Any:
        assert isinstance(self.client, RedisCluster)
        try:
            return await self.client.execute_command(*args)
        except redis_errors.RedisError as exc:
            return exc
        except Exception as exc:
            return batch_failed(exc)


RESEND = object()  # a call not answered yet in a cluster batch


def resend(reply: Any) -> bool:
    """Whether a cluster batch's reply says to send the call again on its own."""
    return isinstance(
        reply,
        redis_errors.AskError  # MovedError included
        | redis_errors.TryAgainError
        | redis_errors.ClusterDownError
        | redis_errors.ConnectionError
        | redis_errors.TimeoutError,
    )


def key_of(args: tuple[Arg, ...]) -> Arg:
    """The key a call is routed by: EVALSHA's first key, else the command's first argument."""
    return args[3] if args[0] == "EVALSHA" else args[1]


def batch_failed(exc: Exception) -> redis_errors.ConnectionError:
    """A batch that failed below redis-py's own errors (a socket error it let through while a
    connection died): to each call, that is a lost connection."""
    log.warning("Redis batch failed: %r", exc)
    return redis_errors.ConnectionError(f"the batch failed: {exc!r}")


class RedisLink:
    """Scripts and commands on Redis, each labelled by its operation in the metrics.

    While the breaker is open no call waits on Redis: it fails at once with StorageUnavailable.
    A call that fails because Redis cannot serve (see `unavailable_reason`) counts toward
    opening it; any reply, domain answers included, counts as Redis being fine.
    """

    def __init__(self, client: Client, settings: Settings, metrics: Metrics) -> None:
        self.client = client
        self.storage: Storage | None = None  # known once Redis has answered
        self.breaker = CircuitBreaker(settings.breaker_failures, self._breaker_changed)
        self.last_latency_seconds: float | None = None
        self.last_trouble = -math.inf  # time.monotonic() of the last failed call or probe
        self.instance_id = uuid.uuid4().hex[:12]
        self._connected = False
        self._metrics = metrics
        self._pipeline = (
            ClusterAutoPipeline(client)
            if isinstance(client, RedisCluster)
            else AutoPipeline(client)
        )
        self._scripts = scripts.load_all()
        self._where = address(settings.redis_url)
        self._probe_seconds = settings.breaker_probe_seconds
        self._closing = False
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
        except (redis_errors.RedisError, redis_errors.RedisClusterException) as exc:
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
                if isinstance(self.client, RedisCluster):
                    await self.client.initialize()  # the nodes and who serves which slot
                self.storage = await detect_storage(self.client)
            except (redis_errors.RedisError, redis_errors.RedisClusterException) as exc:
                return self._not_connected(exc, at_start_up)
            self._succeeded()
            log.info("session storage: %s", self.kind)
        return True

    def _not_connected(self, exc: Exception, at_start_up: bool) -> Literal[False]:
        problem = misconfiguration(exc, self._where)
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
            await self._probe_writes(ttl_ms)
        except redis_errors.OutOfMemoryError:
            pass  # full, not down (StorageFull): reads and games in progress still work
        except (redis_errors.RedisError, redis_errors.RedisClusterException) as exc:
            if unavailable_reason(exc) is None:
                raise
            self._failed()
            if isinstance(self.client, RedisCluster):  # a primary may have failed over
                with contextlib.suppress(redis_errors.RedisError):
                    await self.client.nodes_manager.initialize()
            return False
        self.last_latency_seconds = time.perf_counter() - started
        self._succeeded()
        self.breaker.close()
        return True

    async def _probe_writes(self, ttl_ms: int) -> None:
        """The probe's write: on a cluster, one on every primary (a key in one of its slots)."""
        if not isinstance(self.client, RedisCluster):
            await self.client.set(keys.probe(self.instance_id), "1", px=ttl_ms)
            return
        for node in self.client.get_primaries():
            key = keys.probe(self.instance_id, slot_tag(first_slot(self.client, node)))
            await node.execute_command("SET", key, "1", "PX", ttl_ms)

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
        if not isinstance(self.client, RedisCluster):
            return await self._guarded("count_sessions", _estimate(self.client, samples))
        self._require_usable()
        primaries = self.client.get_primaries()  # on a cluster: each primary's own keys
        counts = [_estimate(node, samples) for node in primaries]
        return sum(await self._guarded("count_sessions", asyncio.gather(*counts)))

    async def listen(
        self,
        channel: str,
        deliver: Callable[[bytes], None],
        subscribed: Callable[[], None],
        lost: Callable[[], None],
    ) -> None:
        """Deliver each message published on `channel` until cancelled. `subscribed()` is called
        once the subscription holds, `lost()` whenever it ends: messages published between a
        `lost()` and the next `subscribed()` are missed. Resubscribes every probe period."""
        while not self._closing:
            pubsub = self.client.pubsub()
            try:
                await pubsub.subscribe(channel)
                subscribed()
                while not self._closing:
                    message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=1)
                    if message is not None:
                        deliver(message["data"])
            except (redis_errors.RedisError, redis_errors.RedisClusterException, OSError):
                pass  # Redis unreachable: try again next period
            finally:
                lost()
                with contextlib.suppress(Exception):
                    await pubsub.aclose()  # type: ignore[no-untyped-call]
            await asyncio.sleep(self._probe_seconds)

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
        self._closing = True
        try:
            await asyncio.wait_for(self._pipeline.drain(), drain_seconds)
        except TimeoutError:
            log.warning("Redis calls still in flight after %.1f s: closing anyway", drain_seconds)
        await self.client.aclose()


async def _estimate(node: Redis | ClusterNode, samples: int) -> int:
    """DBSIZE x the share of session keys among random keys, on one server, in one round trip
    (the keyless commands go to the node given, not through the auto-pipeline)."""
    size, *picked = await asyncio.gather(
        node.execute_command("DBSIZE"), *(node.execute_command("RANDOMKEY") for _ in range(samples))
    )
    sessions = sum(1 for key in picked if key is not None and key.startswith(b"session:"))
    return round(int(size) * sessions / samples)


def address(url: str) -> str:
    """host:port (or the socket path) of a Redis URL, without its credentials."""
    parts = urlsplit(url)
    return parts.path if parts.scheme == "unix" else f"{parts.hostname}:{parts.port or 6379}"


def first_slot(cluster: RedisCluster, node: ClusterNode) -> int:
    """A slot the node serves as primary."""
    for slot, nodes in cluster.nodes_manager.slots_cache.items():
        if nodes and nodes[0].name == node.name:
            return slot
    raise redis_errors.RedisClusterException(f"{node.name} serves no slot")


@functools.cache
def slot_tag(slot: int) -> str:
    """A short hash tag whose keys hash to `slot` (found by counting: about 16,384 tries)."""
    return next(str(n) for n in itertools.count() if key_slot(str(n).encode()) == slot)


async def detect_storage(client: Client) -> Storage:
    """ "json" if the server has the JSON module, else "string" (JSON strings, same scripts).
    A server without it answers "unknown command"; a cluster client, which routes commands by
    what the nodes say they know, refuses it before sending ("doesn't exist")."""
    probe = ("JSON.TYPE", keys.storage_probe())
    try:
        await client.execute_command(*probe)  # type: ignore[no-untyped-call,unused-ignore]
    except redis_errors.RedisError as exc:
        text = str(exc).lower()
        if "unknown command" in text or "doesn't exist in redis commands" in text:
            return "string"
        raise
    return "json"
