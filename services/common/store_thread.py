"""One thread per store: every blocking store call runs there, off the event loop.

chDB calls are not concurrent, and a ClickHouse client is not shared across threads, so each
service that stores (market data: ticks; execution: the journal copy) owns one
:class:`StoreThread`: :meth:`~StoreThread.start` opens the store on that thread,
:meth:`~StoreThread.call` runs a function of the store there, :meth:`~StoreThread.stop` closes
it and ends the thread.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Generic, Protocol, TypeVar

from .errors import UnavailableError


class Closeable(Protocol):
    def close(self) -> None: ...


S = TypeVar("S", bound=Closeable)
T = TypeVar("T")


class StoreThread(Generic[S]):
    """``open_store`` opens the store; ``what`` names it in the UNAVAILABLE error a call gets
    before :meth:`start` or after :meth:`stop` (e.g. "tick store")."""

    def __init__(self, open_store: Callable[[], S], what: str = "store") -> None:
        self._open_store = open_store
        self._what = what
        self._pool = ThreadPoolExecutor(1, thread_name_prefix=what.replace(" ", "-"))
        self._store: S | None = None

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        self._store = await loop.run_in_executor(self._pool, self._open_store)

    async def stop(self) -> None:
        store, self._store = self._store, None
        loop = asyncio.get_running_loop()
        if store is not None:
            await loop.run_in_executor(self._pool, store.close)
        await loop.run_in_executor(None, self._pool.shutdown, True)

    async def call(self, fn: Callable[[S], T]) -> T:
        store = self._store
        if store is None:
            raise UnavailableError(f"the {self._what} is not open")
        return await asyncio.get_running_loop().run_in_executor(self._pool, fn, store)
