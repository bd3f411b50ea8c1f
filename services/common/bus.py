"""The service side of NATS: one connection per process, retried in the background."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable

import nats
from nats.aio.client import Client
from nats.aio.msg import Msg

log = logging.getLogger("tradecore.bus")

Handler = Callable[[Msg], Awaitable[None]]


class Bus:
    """A NATS connection that a service can run without: the service keeps serving gRPC while
    NATS is down and (re)subscribes once it is reachable."""

    def __init__(self, url: str, name: str) -> None:
        self.url = url
        self.name = name
        self.nc: Client | None = None
        self._subscriptions: list[tuple[str, str, Handler]] = []
        self._task: asyncio.Task[None] | None = None
        self.connected = asyncio.Event()

    def subscribe(self, subject: str, handler: Handler, queue: str = "") -> None:
        """Register a subscription made on every (re)connection."""
        self._subscriptions.append((subject, queue, handler))

    async def start(self) -> None:
        self._task = asyncio.create_task(self._connect_loop(), name=f"{self.name}-nats")

    async def _connect_loop(self) -> None:
        delay = 0.2
        while True:
            try:
                nc = await nats.connect(
                    servers=[u.strip() for u in self.url.split(",")],
                    name=self.name,
                    connect_timeout=2,
                    max_reconnect_attempts=-1,
                    reconnect_time_wait=0.5,
                    allow_reconnect=True,
                )
            except Exception as exc:
                log.warning(
                    "%s: NATS %s unreachable (%s); retrying in %.1fs",
                    self.name,
                    self.url,
                    exc,
                    delay,
                )
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)
                continue
            for subject, queue, handler in self._subscriptions:
                await nc.subscribe(subject, queue=queue, cb=handler)
            self.nc = nc
            self.connected.set()
            log.info("%s: connected to NATS %s", self.name, self.url)
            return

    async def stop(self) -> None:
        if self._task is not None and not self._task.done():
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self.nc is not None and not self.nc.is_closed:
            with contextlib.suppress(Exception):
                await self.nc.drain()
