"""``tradecore feed ...``: start, watch, list and stop MarketDataService feeds of a running mesh.

    tradecore feed lobster --messages FILE --book FILE --symbol SYM [--speed X] [--wait]
    tradecore feed synthetic --symbols A,B --rate N --count M [--speed X] [--seed S] [--wait]
    tradecore feed alpaca --symbols AAPL,MSFT [--history --start T --end T] [--feed iex|sip]
                          [--rest-url URL --stream-url URL] [--wait]
    tradecore feed list
    tradecore feed status ID [--wait]
    tradecore feed stop ID

Each prints the feed status as JSON. ``--wait`` returns once every tick is published and
stored (state DONE). Exit status: 0 done/ok, 1 failed or stopped, 2 bad input, 3 the mesh is
not running.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

import grpc

from .client_cli import message_json, service_target
from .config import MeshConfig


def build_parser() -> argparse.ArgumentParser:
    defaults = MeshConfig.from_env()
    ap = argparse.ArgumentParser(prog="tradecore feed", description=__doc__.split("\n")[0])
    from .cli import _add_mesh_args

    _add_mesh_args(ap, defaults)
    ap.add_argument("--target", default="", help="MarketDataService host:port (default: mesh)")
    sub = ap.add_subparsers(dest="action", required=True)
    lo = sub.add_parser("lobster", help="replay a LOBSTER message/orderbook file pair")
    lo.add_argument("--messages", required=True)
    lo.add_argument("--book", required=True)
    lo.add_argument("--symbol", required=True)
    lo.add_argument("--speed", type=float, default=0.0, help="0: as fast as possible")
    sy = sub.add_parser("synthetic", help="synthetic order flow for several symbols")
    sy.add_argument("--symbols", required=True, help="comma separated, e.g. AAA,BBB")
    sy.add_argument("--rate", type=float, required=True, help="ticks per second per symbol")
    sy.add_argument("--count", type=int, required=True, help="ticks per symbol")
    sy.add_argument("--speed", type=float, default=1.0, help="0: as fast as possible")
    sy.add_argument("--seed", type=int, default=0)
    al = sub.add_parser(
        "alpaca",
        help="Alpaca stock quotes and trades (credentials: the service's environment)",
    )
    al.add_argument("--symbols", required=True, help="comma separated, e.g. AAPL,MSFT")
    al.add_argument("--history", action="store_true", help="REST history over --start/--end")
    al.add_argument("--start", default="", help="RFC 3339, e.g. 2024-01-02T14:30:00Z")
    al.add_argument("--end", default="", help="RFC 3339 (default: now)")
    al.add_argument("--feed", default="", help="iex (default) or sip")
    al.add_argument("--rest-url", default="", help="override Alpaca's data REST base URL")
    al.add_argument("--stream-url", default="", help="override Alpaca's stream base URL")
    for p in (lo, sy, al):
        p.add_argument("--wait", action="store_true", help="return once all is stored")
        p.add_argument("--timeout", type=float, default=600.0, help="--wait limit, seconds")
    sub.add_parser("list", help="every feed and its progress")
    st = sub.add_parser("status", help="one feed's progress")
    st.add_argument("id")
    st.add_argument("--wait", action="store_true")
    st.add_argument("--timeout", type=float, default=600.0)
    sp = sub.add_parser("stop", help="stop a feed")
    sp.add_argument("id")
    return ap


def _alpaca_spec(pb: Any, ns: argparse.Namespace) -> Any:
    spec = pb.AlpacaFeedSpec(
        symbols=[s.strip() for s in ns.symbols.split(",") if s.strip()],
        mode=pb.HISTORY if ns.history else pb.LIVE,
        feed=ns.feed,
        rest_url=ns.rest_url,
        stream_url=ns.stream_url,
    )
    for name in ("start", "end"):
        text = getattr(ns, name)
        if text:
            try:
                getattr(spec, name).FromJsonString(text)
            except ValueError:
                raise ValueError(f"--{name} must be an RFC 3339 time (got {text!r})") from None
    return spec


def _wait(stub: Any, pb: Any, feed_id: str, timeout: float) -> Any:
    """Long-polls GetFeed (the service answers as soon as the feed is over) until ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        left = deadline - time.monotonic()
        req = pb.GetFeedRequest(id=feed_id)
        req.wait.FromNanoseconds(int(min(max(left, 0.0), 10.0) * 1e9))
        status = stub.GetFeed(req, timeout=30)
        if status.state != pb.RUNNING or time.monotonic() > deadline:
            return status


def feed_main(argv: list[str]) -> int:
    ns = build_parser().parse_args(argv)
    try:
        target = service_target(ns.data_dir, ns.target, "marketdata")
    except ValueError as exc:
        print(f"tradecore feed: {exc}", file=sys.stderr)
        return 2
    if target is None:
        print(
            f"tradecore feed: the mesh is not running (no {Path(ns.data_dir).resolve()}/mesh.json)",
            file=sys.stderr,
        )
        return 3
    from tradecore_api.marketdata.v1 import marketdata_pb2 as pb
    from tradecore_api.marketdata.v1 import marketdata_pb2_grpc as pb_grpc

    with grpc.insecure_channel(target) as channel:
        stub = pb_grpc.MarketDataServiceStub(channel)
        try:
            if ns.action == "list":
                for f in stub.ListFeeds(pb.ListFeedsRequest(), timeout=10).feeds:
                    print(message_json(f))
                return 0
            if ns.action == "stop":
                print(message_json(stub.StopFeed(pb.StopFeedRequest(id=ns.id), timeout=30)))
                return 0
            if ns.action == "status":
                status = stub.GetFeed(pb.GetFeedRequest(id=ns.id), timeout=10)
            elif ns.action == "lobster":
                status = stub.StartFeed(
                    pb.StartFeedRequest(
                        lobster=pb.LobsterFeedSpec(
                            messages_path=str(Path(ns.messages).resolve()),
                            book_path=str(Path(ns.book).resolve()),
                            symbol=ns.symbol,
                            speed=ns.speed,
                        )
                    ),
                    timeout=60,
                )
            elif ns.action == "alpaca":
                request = pb.StartFeedRequest(alpaca=_alpaca_spec(pb, ns))
                status = stub.StartFeed(request, timeout=60)
            else:
                symbols = [s.strip() for s in ns.symbols.split(",") if s.strip()]
                status = stub.StartFeed(
                    pb.StartFeedRequest(
                        synthetic=pb.SyntheticFeedSpec(
                            symbols=symbols,
                            rate=ns.rate,
                            count=ns.count,
                            speed=ns.speed,
                            seed=ns.seed,
                        )
                    ),
                    timeout=60,
                )
            if ns.wait:
                status = _wait(stub, pb, status.id, ns.timeout)
            print(message_json(status))
            if ns.wait and status.state != pb.DONE:
                return 1
            return 0
        except ValueError as exc:
            print(f"tradecore feed {ns.action}: {exc}", file=sys.stderr)
            return 2
        except grpc.RpcError as exc:
            code = exc.code()
            print(f"tradecore feed {ns.action}: {code.name}: {exc.details()}", file=sys.stderr)
            if code == grpc.StatusCode.INVALID_ARGUMENT:
                return 2
            if code == grpc.StatusCode.UNAVAILABLE:
                return 3
            return 1
