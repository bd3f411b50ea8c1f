"""Daily returns from the bars the market-data service stores, for the historical methods when
a request brings no returns of its own.

The risk service reads the market-data tick table (through ``tradecore.risk.history``, which
knows its SQL; no market-data code or proto is imported) only where that table is readable by a
second process: a ClickHouse server (``TRADECORE_CLICKHOUSE_DSN=http://…``, the DSN the mesh
gives both services). The embedded chDB of the default mesh is a directory that one process at
a time can open (a second ``chdb`` engine on it fails with "Cannot lock file …/status. Another
server instance in same directory is already running"), and opening it while the market-data
service is down would keep that service from starting; so with chDB the risk service does not
touch it and a request without returns is FAILED_PRECONDITION saying so.

Queries are blocking I/O: they run on this object's own thread, one at a time.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import numpy.typing as npt
from clickhouse_connect.driver.exceptions import ClickHouseError, OperationalError
from tradecore.risk.history import bar_returns
from tradecore.store import Store, connect

from ..common.errors import PreconditionError, UnavailableError
from ..common.settings import ServiceSettings

FloatArray = npt.NDArray[np.float64]


def readable(dsn: str) -> bool:
    """Whether the store at ``dsn`` can be read beside the process that writes it."""
    return dsn.lower().startswith(("http://", "https://"))


class StoredBars:
    """The stored daily returns at ``dsn``, or none (``dsn`` None, ``reason`` says why)."""

    def __init__(self, dsn: str | None, reason: str = "") -> None:
        self.dsn = dsn
        self.reason = reason
        self._store: Store | None = None
        self._thread = ThreadPoolExecutor(1, thread_name_prefix="risk-bars")

    @classmethod
    def for_settings(cls, settings: ServiceSettings) -> StoredBars:
        dsn = settings.clickhouse_dsn
        if readable(dsn):
            return cls(dsn)
        return cls(
            None,
            "the market-data ticks are in its embedded chDB, which only that process can "
            "open; send the returns in the request, or run the mesh on a ClickHouse server "
            "(tradecore up --clickhouse-dsn http://…)",
        )

    def _read(
        self, symbols: Sequence[str], lookback_days: int
    ) -> tuple[FloatArray, npt.NDArray[np.datetime64]]:
        assert self.dsn is not None
        if self._store is None:
            self._store = connect(self.dsn)
        return bar_returns(self._store, symbols, lookback_days=lookback_days)

    async def returns(
        self, symbols: Sequence[str], lookback_days: int, field: str, symbol_field: str
    ) -> tuple[FloatArray, npt.NDArray[np.datetime64]]:
        """``(days x len(symbols) daily log-returns, the dates they end on)``.

        PreconditionError (``field``: empty and no stored bars are readable) without a
        readable store; a ValueError naming ``symbol_field`` (``{}``: the symbol's index) when
        a symbol has too few stored days; UnavailableError when the store does not answer."""
        if self.dsn is None:
            raise PreconditionError(
                f"{field}: empty and no stored bars are readable: {self.reason}"
            )
        loop = asyncio.get_running_loop()
        try:
            return await loop.run_in_executor(self._thread, self._read, symbols, lookback_days)
        except ValueError as exc:
            text = re.sub(r"^symbols\[(\d+)\]", lambda m: symbol_field.format(m.group(1)), str(exc))
            raise ValueError(f"{text} ({field} empty: read from the stored bars)") from exc
        except (OSError, OperationalError) as exc:  # the server does not answer
            raise UnavailableError(f"{field}: the stored bars are unreachable: {exc}") from exc
        except ClickHouseError as exc:  # e.g. no tick table: nothing stored there yet
            raise PreconditionError(
                f"{field}: empty and the stored bars cannot be read: {exc}"
            ) from exc

    async def close(self) -> None:
        store = self._store

        def shut() -> None:
            if store is not None:
                store.close()

        loop = asyncio.get_running_loop()
        await loop.run_in_executor(self._thread, shut)
        self._thread.shutdown(wait=True)
