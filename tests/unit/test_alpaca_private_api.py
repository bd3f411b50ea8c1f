"""The few private members of alpaca-py the Alpaca feed relies on, for want of a public API.

alpaca-py is pinned below its next minor version (pyproject.toml); these tests check the
assumptions that pin stands for, so that raising it shows at once what changed:

- ``DataStream._run_forever()``: the stream's loop as a coroutine. The public ``run()`` calls
  ``asyncio.run`` itself, so it cannot run in the service's event loop.
- ``DataStream._start_ws()`` and ``_auth()``: overridden to count connections and to stop on a
  login that retrying cannot fix (alpaca-py retries a rejected login forever).
- ``RESTClient._session``: a ``requests.Session`` that every request goes through; the feed
  mounts an adapter with a timeout on it (the client sends requests without one).
"""

from __future__ import annotations

import ast
import inspect
from pathlib import Path

import requests
from alpaca.data.historical.stock import StockHistoricalDataClient
from alpaca.data.live.stock import StockDataStream
from alpaca.data.live.websocket import DataStream
from tradecore_services.marketdata.feeds import alpaca as feed_mod

# The private members of alpaca-py objects that alpaca.py may use.
PINNED = {"_run_forever", "_start_ws", "_auth", "_session"}
FEED_SOURCE = Path(feed_mod.__file__)


def _params(fn: object) -> list[str]:
    return list(inspect.signature(fn).parameters)  # type: ignore[arg-type]


def test_stream_loop_and_login_hooks_are_coroutines_of_no_arguments() -> None:
    for name in ("_run_forever", "_start_ws", "_auth"):
        fn = getattr(DataStream, name)
        assert inspect.iscoroutinefunction(fn), name
        assert _params(fn) == ["self"], name
    # Every (re)connection of the loop goes through _start_ws, which logs in with _auth.
    assert "self._start_ws()" in inspect.getsource(DataStream._run_forever)
    assert "self._auth()" in inspect.getsource(DataStream._start_ws)
    # The loop ends on the stop that stop_ws() requests; close() is public.
    assert inspect.iscoroutinefunction(StockDataStream.stop_ws)
    assert inspect.iscoroutinefunction(StockDataStream.close)


def test_rest_client_sends_every_request_through_its_session() -> None:
    client = StockHistoricalDataClient("key", "secret", raw_data=True)
    try:
        assert isinstance(client._session, requests.Session)
        assert "self._session.request(" in inspect.getsource(type(client)._one_request)
    finally:
        client._session.close()


def test_the_streams_own_attributes_do_not_shadow_alpaca_pys() -> None:
    plain = StockDataStream("key", "secret", raw_data=True)
    tree = ast.parse(FEED_SOURCE.read_text())
    (cls,) = [n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == "_Stream"]
    own = {
        t.attr
        for n in ast.walk(cls)
        if isinstance(n, ast.Assign | ast.AnnAssign)
        for t in (n.targets if isinstance(n, ast.Assign) else [n.target])
        if isinstance(t, ast.Attribute) and isinstance(t.value, ast.Name) and t.value.id == "self"
    }
    assert own == {"endpoint", "_feed", "fatal"}
    assert not any(hasattr(plain, name) for name in own)


def test_the_feed_uses_no_other_private_member_of_alpaca_py() -> None:
    tree = ast.parse(FEED_SOURCE.read_text())
    # Private names defined by alpaca.py itself (its own classes' attributes and functions).
    defined = {
        t.attr
        for n in ast.walk(tree)
        if isinstance(n, ast.Assign | ast.AnnAssign)
        for t in (n.targets if isinstance(n, ast.Assign) else [n.target])
        if isinstance(t, ast.Attribute)
    } | {n.name for n in ast.walk(tree) if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef)}
    used = {
        n.attr
        for n in ast.walk(tree)
        if isinstance(n, ast.Attribute) and n.attr.startswith("_") and not n.attr.startswith("__")
    }
    assert used - defined <= PINNED, sorted(used - defined - PINNED)
