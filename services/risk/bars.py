"""Daily returns from the bars the market-data service stores, for the historical methods when
a request brings no returns of its own.

Two ways to the stored daily closes, both ``tradecore.risk.history.daily_closes`` (one query,
one definition of a day's close; no market-data code or proto is imported):

- a ClickHouse server (``TRADECORE_CLICKHOUSE_DSN=http://…``, the DSN the mesh gives both
  services): the risk service reads the tick table itself, on this object's own thread (blocking
  I/O, one query at a time);
- otherwise (the default mesh's embedded chDB, a directory only the market-data process can
  open: a second ``chdb`` engine on it fails with "Another server instance in same directory is
  already running") it asks the market-data service over NATS request/reply
  (``marketdata.v1.daily_closes``: ``events.v1.DailyClosesRequest`` -> ``DailyCloses``), waiting
  at most :data:`REQUEST_TIMEOUT_S` or what is left of the call's deadline; no answer is
  UNAVAILABLE saying so.

Either way the returns are the log-ratios of the aligned closes (``closes_returns``).
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor

import nats.errors
import numpy as np
import numpy.typing as npt
from clickhouse_connect.driver.exceptions import ClickHouseError, OperationalError
from google.protobuf.message import DecodeError
from tradecore.risk.history import bar_returns, closes_returns, from_yyyymmdd
from tradecore.store import Store, connect
from tradecore.subjects import MARKETDATA_DAILY_CLOSES
from tradecore_api.events.v1 import market_pb2 as events

from ..common import nats_rpc
from ..common.bus import Bus
from ..common.errors import PreconditionError, UnavailableError
from ..common.settings import ServiceSettings

FloatArray = npt.NDArray[np.float64]

#: How long the risk service waits for the market-data service's closes (less when the call's
#: deadline is nearer).
REQUEST_TIMEOUT_S = 10.0


def readable(dsn: str) -> bool:
    """Whether the store at ``dsn`` can be read beside the process that writes it."""
    return dsn.lower().startswith(("http://", "https://"))


def named(message: str, field: str, symbol_field: str) -> ValueError:
    """The library's ``symbols[i]: …`` error about the request's ``symbol_field``."""
    text = re.sub(r"^symbols\[(\d+)\]", lambda m: symbol_field.format(m.group(1)), message)
    return ValueError(f"{text} ({field} empty: read from the stored bars)")


class StoredBars:
    """The stored daily returns: read at ``dsn`` (a store this process may open), else asked of
    the market-data service over ``bus``, else none (``reason`` says why)."""

    def __init__(
        self,
        dsn: str | None,
        reason: str = "",
        *,
        bus: Bus | None = None,
        timeout: float = REQUEST_TIMEOUT_S,
    ) -> None:
        self.dsn = dsn
        self.reason = reason
        self.bus = bus
        self.timeout = timeout
        self._store: Store | None = None
        self._thread = ThreadPoolExecutor(1, thread_name_prefix="risk-bars")

    @classmethod
    def for_settings(cls, settings: ServiceSettings, bus: Bus) -> StoredBars:
        """A ClickHouse server's tick table read directly; the embedded chDB (only the
        market-data process can open it) through that service over NATS."""
        dsn = settings.clickhouse_dsn
        if readable(dsn):
            return cls(dsn)
        return cls(None, bus=bus)

    def _read(
        self, symbols: Sequence[str], lookback_days: int
    ) -> tuple[FloatArray, npt.NDArray[np.datetime64]]:
        assert self.dsn is not None
        if self._store is None:
            self._store = connect(self.dsn)
        return bar_returns(self._store, symbols, lookback_days=lookback_days)

    async def returns(
        self,
        symbols: Sequence[str],
        lookback_days: int,
        field: str,
        symbol_field: str,
        time_remaining: float | None = None,
    ) -> tuple[FloatArray, npt.NDArray[np.datetime64]]:
        """``(days x len(symbols) daily log-returns, the dates they end on)``.

        PreconditionError (``field``: empty and no stored bars are readable) without a
        store or a bus; a ValueError naming ``symbol_field`` (``{}``: the symbol's index) when
        a symbol has too few stored days; UnavailableError when the store or the market-data
        service does not answer; TimeoutError when the call's deadline (``time_remaining``
        seconds) passes first."""
        if self.dsn is not None:
            return await self._returns_from_store(symbols, lookback_days, field, symbol_field)
        if self.bus is not None:
            return await self._returns_over_nats(
                self.bus, symbols, lookback_days, field, symbol_field, time_remaining
            )
        raise PreconditionError(f"{field}: empty and no stored bars are readable: {self.reason}")

    async def _returns_from_store(
        self, symbols: Sequence[str], lookback_days: int, field: str, symbol_field: str
    ) -> tuple[FloatArray, npt.NDArray[np.datetime64]]:
        loop = asyncio.get_running_loop()
        try:
            return await loop.run_in_executor(self._thread, self._read, symbols, lookback_days)
        except ValueError as exc:
            raise named(str(exc), field, symbol_field) from exc
        except (OSError, OperationalError) as exc:  # the server does not answer
            raise UnavailableError(f"{field}: the stored bars are unreachable: {exc}") from exc
        except ClickHouseError as exc:  # e.g. no tick table: nothing stored there yet
            raise PreconditionError(
                f"{field}: empty and the stored bars cannot be read: {exc}"
            ) from exc

    async def _returns_over_nats(
        self,
        bus: Bus,
        symbols: Sequence[str],
        lookback_days: int,
        field: str,
        symbol_field: str,
        time_remaining: float | None,
    ) -> tuple[FloatArray, npt.NDArray[np.datetime64]]:
        subject = MARKETDATA_DAILY_CLOSES
        nc = bus.nc
        if nc is None or not nc.is_connected:
            raise UnavailableError(
                f"{field}: empty, and the stored bars come from the market-data service over "
                "NATS, which is not connected now"
            )
        timeout = self.timeout
        if time_remaining is not None and time_remaining < timeout:
            if time_remaining <= 0:
                raise TimeoutError(f"{field}: the call's deadline passed before the bars were read")
            timeout = time_remaining
        req = events.DailyClosesRequest(symbols=list(symbols), lookback_days=lookback_days)
        try:
            data, _ = await nats_rpc.request(nc, subject, req.SerializeToString(), timeout=timeout)
        except nats_rpc.NatsRpcError as exc:
            if exc.code == "INVALID_ARGUMENT":
                raise named(exc.message, field, symbol_field) from exc
            raise UnavailableError(
                f"{field}: empty, and the market-data service could not read the stored bars "
                f"({subject}: {exc.code}: {exc.message})"
            ) from exc
        except nats.errors.NoRespondersError as exc:
            raise UnavailableError(
                f"{field}: empty, and no market-data service answers {subject} (is it "
                "running?); send the returns in the request"
            ) from exc
        except TimeoutError as exc:  # nats.errors.TimeoutError is one
            if timeout < self.timeout:  # the call's own deadline cut the wait short
                raise TimeoutError(
                    f"{field}: the call's deadline passed while the market-data service was "
                    f"reading the stored bars ({subject})"
                ) from exc
            raise UnavailableError(
                f"{field}: empty, and the market-data service did not answer {subject} within "
                f"{timeout:.3g} s"
            ) from exc
        except nats.errors.Error as exc:
            raise UnavailableError(f"{field}: empty, and {subject} failed: {exc}") from exc
        return self._reply_returns(data, symbols, field)

    @staticmethod
    def _reply_returns(
        data: bytes, symbols: Sequence[str], field: str
    ) -> tuple[FloatArray, npt.NDArray[np.datetime64]]:
        """The returns of a DailyCloses reply; UnavailableError when it is not the reply to
        the request (a broken peer, not a bad request)."""
        try:
            reply = events.DailyCloses.FromString(data)
            if list(reply.symbols) != list(symbols):
                raise ValueError(f"symbols {list(reply.symbols)} are not the ones asked for")
            dates = from_yyyymmdd(reply.dates)
            if len(reply.closes) != dates.size * len(symbols):
                raise ValueError(
                    f"{len(reply.closes)} closes are not {dates.size} dates x {len(symbols)}"
                )
            closes = np.asarray(reply.closes, dtype=np.float64).reshape(dates.size, len(symbols))
            return closes_returns(dates, closes)
        except (DecodeError, ValueError) as exc:
            raise UnavailableError(
                f"{field}: empty, and the market-data service's {MARKETDATA_DAILY_CLOSES} "
                f"reply is unusable: {exc}"
            ) from exc

    async def close(self) -> None:
        store = self._store

        def shut() -> None:
            if store is not None:
                store.close()

        loop = asyncio.get_running_loop()
        await loop.run_in_executor(self._thread, shut)
        self._thread.shutdown(wait=True)
