"""The service side of NATS: one connection per process, kept up in the background.

nats-py reconnects by itself when the server goes away (the connection object, its
subscriptions and JetStream contexts survive), but it closes the connection for good on some
server ``-ERR`` replies (e.g. "maximum control line exceeded"). The Bus notices a closed
connection and connects again, re-making its subscriptions and running its connect hooks, so a
service never stays deaf. :attr:`Bus.up` and :meth:`Bus.watch` tell whether NATS is usable
now; the services report NOT_SERVING (grpc.health.v1) while it is not.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable

import nats
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.errors import NoRespondersError
from nats.js.errors import NoStreamResponseError, ServiceUnavailableError

from . import tracing

#: A JetStream publish that failed this way may or may not be stored: no acknowledgement came
#: (timeout), nobody answered (a clustered stream electing its leader after a node died: no
#: responders / no stream response), or JetStream said it is unavailable. Callers treat them
#: all as "unknown outcome" (UnavailableError; a journal rebuilds from what is stored).
JETSTREAM_UNAVAILABLE: tuple[type[Exception], ...] = (
    TimeoutError,
    NoRespondersError,
    NoStreamResponseError,
    ServiceUnavailableError,
)
log = logging.getLogger("tradecore.bus")
STOP_DRAIN_S = 2.0  # at stop: how long buffered messages may take to go out

Handler = Callable[[Msg], Awaitable[None]]
ConnectHook = Callable[[Client], Awaitable[None]]
# While NATS is down, a publish is buffered (up to this many bytes) and sent on reconnection;
# enough for a publisher's window of JetStream messages (8 of up to 960 KiB).
PENDING_BYTES = 64 * 1024 * 1024
RETRY_MIN_S = 0.2
RETRY_MAX_S = 5.0


async def _attach_tracing(nc: Client) -> None:
    """The local span exporter publishes on this connection (spans are telemetry: a failure
    here leaves the connection usable)."""
    try:
        await tracing.attach(nc)
    except Exception as exc:
        log.warning("spans not stored on NATS: %s", exc)


class Bus:
    """A NATS connection that a service can run without: the service keeps serving gRPC while
    NATS is down and (re)subscribes once it is reachable."""

    def __init__(self, url: str, name: str) -> None:
        self.url = url
        self.name = name
        self.nc: Client | None = None
        self._subscriptions: list[tuple[str, str, Handler]] = []
        self._hooks: list[ConnectHook] = []
        self._task: asyncio.Task[None] | None = None
        self._stopping = False
        self.connected = asyncio.Event()  # set once a connection was made (stays set)
        # Set (and replaced) on every change of :attr:`up` and on every new connection.
        self._changed = asyncio.Event()

    def subscribe(self, subject: str, handler: Handler, queue: str = "") -> None:
        """Register a subscription made on every new connection."""
        self._subscriptions.append((subject, queue, handler))

    def on_connect(self, hook: ConnectHook) -> None:
        """Register ``hook(nc)``, awaited on every new connection (after the subscriptions)
        before the Bus reports it up. nats-py's own reconnections keep the connection (and
        what was made on it) and do not run the hooks."""
        self._hooks.append(hook)

    @property
    def up(self) -> bool:
        """Whether NATS is usable now (connected, not reconnecting or closed)."""
        nc = self.nc
        return nc is not None and nc.is_connected

    def _notify(self) -> None:
        self._changed.set()
        self._changed = asyncio.Event()

    async def watch(self, on_change: Callable[[bool], Awaitable[None]]) -> None:
        """Call ``on_change(up)`` now and whenever :attr:`up` may have changed; runs until
        cancelled."""
        while True:
            changed = self._changed
            await on_change(self.up)
            await changed.wait()

    async def wait_closed(self, nc: Client) -> None:
        """Return once ``nc`` is closed (for good: nats-py's reconnections do not count)."""
        while not nc.is_closed:
            await self._changed.wait()

    async def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name=f"{self.name}-nats")

    async def _connect(self, closed: asyncio.Event) -> Client:
        async def on_disconnected() -> None:
            log.warning("%s: NATS connection lost; reconnecting", self.name)
            self._notify()

        async def on_reconnected() -> None:
            log.info("%s: reconnected to NATS", self.name)
            self._notify()

        async def on_closed() -> None:
            closed.set()
            self._notify()

        async def on_error(exc: Exception) -> None:
            log.warning("%s: NATS error: %s", self.name, exc)

        return await nats.connect(
            servers=[u.strip() for u in self.url.split(",")],
            name=self.name,
            connect_timeout=2,
            max_reconnect_attempts=-1,
            reconnect_time_wait=0.5,
            allow_reconnect=True,
            pending_size=PENDING_BYTES,
            disconnected_cb=on_disconnected,
            reconnected_cb=on_reconnected,
            closed_cb=on_closed,
            error_cb=on_error,
        )

    async def _run(self) -> None:
        delay = RETRY_MIN_S
        while not self._stopping:
            closed = asyncio.Event()
            nc: Client | None = None
            try:
                nc = await self._connect(closed)
                for subject, queue, handler in self._subscriptions:
                    await nc.subscribe(subject, queue=queue, cb=handler)
                for hook in self._hooks:
                    await hook(nc)
                await _attach_tracing(nc)
            except asyncio.CancelledError:
                if nc is not None:
                    with contextlib.suppress(Exception):
                        await nc.close()
                raise
            except Exception as exc:
                log.warning(
                    "%s: NATS %s unusable (%s); retrying in %.1fs", self.name, self.url, exc, delay
                )
                if nc is not None:
                    with contextlib.suppress(Exception):
                        await nc.close()
                await asyncio.sleep(delay)
                delay = min(delay * 2, RETRY_MAX_S)
                continue
            delay = RETRY_MIN_S
            self.nc = nc
            self.connected.set()
            self._notify()
            log.info("%s: connected to NATS %s", self.name, self.url)
            await closed.wait()
            if self._stopping:
                return
            log.warning(
                "%s: NATS closed the connection (%s); connecting again", self.name, nc.last_error
            )
            self._notify()

    async def stop(self) -> None:
        self._stopping = True
        if self._task is not None and not self._task.done():
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        nc = self.nc
        if nc is not None and not nc.is_closed:
            # Drain (deliver what is buffered) only while connected, and for a bounded time:
            # a connection that is reconnecting (NATS stopped with the mesh) would hold the
            # drain until nats-py's drain timeout (30 s) and the service past its grace period.
            if nc.is_connected:
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(nc.drain(), STOP_DRAIN_S)
            if not nc.is_closed:
                with contextlib.suppress(Exception):
                    await nc.close()
