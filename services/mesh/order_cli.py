"""``tradecore order ...`` and ``tradecore positions``: the ExecutionService of a running mesh,
over gRPC.

    tradecore order submit --account A --client-order-id C --symbol S --side BUY|SELL
                           --quantity N [--type LIMIT] [--limit-price P] [--stop-price P]
                           [--time-in-force DAY] [--venue PAPER]
    tradecore order cancel ORDER_ID
    tradecore order get ORDER_ID
    tradecore order list --account A [--open] [--limit N]
    tradecore order algo start --account A --client-algo-id C --symbol S --side BUY|SELL
                               --quantity N --kind TWAP|VWAP|POV|IS|ICEBERG
                               [--duration-s D | --end-time-ns T] [--start-time-ns T]
                               [--slices N] [--randomize R] [--seed N] [--curve W,W,...]
                               [--rate R] [--min-rate R] [--max-rate R]
                               [--risk-aversion L] [--volatility S] [--impact E]
                               [--display-quantity N] [--limit-price P] [--venue PAPER]
    tradecore order algo get|stop ALGO_ID [--reason R (stop)]
    tradecore order algo list --account A [--working]
    tradecore positions --account A

Each prints its answer as JSON (one order or position per line for ``list`` and
``positions``). Exit status: 0 ok, 1 the service refused the request (not found, wrong state,
venue not running), 2 bad input, 3 the mesh is not running or the service is unavailable.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import grpc

from .client_cli import message_json, service_target
from .config import MeshConfig


def _common(ap: argparse.ArgumentParser) -> None:
    from .cli import _add_mesh_args

    _add_mesh_args(ap, MeshConfig.from_env())
    ap.add_argument("--target", default="", help="ExecutionService host:port (default: mesh)")


def order_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="tradecore order", description=__doc__.split("\n")[0])
    _common(ap)
    sub = ap.add_subparsers(dest="action", required=True)
    sm = sub.add_parser("submit", help="submit an order (a repeated client order id returns it)")
    sm.add_argument("--account", required=True)
    sm.add_argument("--client-order-id", required=True)
    sm.add_argument("--symbol", required=True)
    sm.add_argument("--side", required=True, choices=["BUY", "SELL"])
    sm.add_argument("--quantity", required=True, type=int)
    sm.add_argument("--type", default="LIMIT", choices=["MARKET", "LIMIT", "STOP", "STOP_LIMIT"])
    sm.add_argument("--limit-price", type=float, default=None)
    sm.add_argument("--stop-price", type=float, default=None)
    sm.add_argument("--time-in-force", default="DAY", choices=["DAY", "GTC", "IOC", "FOK"])
    sm.add_argument("--venue", default="PAPER", choices=["PAPER", "ALPACA"])
    for name, what in (("cancel", "cancel an order"), ("get", "one order")):
        p = sub.add_parser(name, help=what)
        p.add_argument("order_id")
    ls = sub.add_parser("list", help="an account's orders, newest first")
    ls.add_argument("--account", required=True)
    ls.add_argument("--open", action="store_true", help="only orders that can still fill")
    ls.add_argument("--limit", type=int, default=0, help="at most this many (default 1000)")
    _algo_parser(sub.add_parser("algo", help="execution algorithms (parent orders)"))
    return ap


def _curve(text: str) -> list[float]:
    try:
        return [float(w) for w in text.split(",") if w.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"not comma-separated numbers: {text!r}") from None


def _seed(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = -1
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be a whole number >= 0, got {text!r}")
    return value


def _algo_parser(ap: argparse.ArgumentParser) -> None:
    sub = ap.add_subparsers(dest="algo_action", required=True)
    st = sub.add_parser("start", help="start an algo (a repeated client algo id returns it)")
    st.add_argument("--account", required=True)
    st.add_argument("--client-algo-id", required=True)
    st.add_argument("--symbol", required=True)
    st.add_argument("--side", required=True, choices=["BUY", "SELL"])
    st.add_argument("--quantity", required=True, type=int)
    st.add_argument("--kind", required=True, choices=["TWAP", "VWAP", "POV", "IS", "ICEBERG"])
    st.add_argument("--venue", default="PAPER", choices=["PAPER", "ALPACA"])
    st.add_argument("--limit-price", type=float, default=None)
    st.add_argument("--start-time-ns", type=int, default=0, help="default: at once")
    st.add_argument("--end-time-ns", type=int, default=0)
    st.add_argument("--duration-s", type=float, default=0.0)
    st.add_argument("--slices", type=int, default=0, help="TWAP, IS; VWAP's flat buckets")
    st.add_argument("--randomize", type=float, default=0.0, help="TWAP: in [0, 1)")
    st.add_argument("--seed", type=_seed, default=0, help="TWAP's randomisation (>= 0)")
    st.add_argument("--curve", type=_curve, default=[], help="VWAP: bucket weights w1,w2,...")
    st.add_argument("--rate", type=float, default=0.0, help="POV: participation rate")
    st.add_argument("--min-rate", type=float, default=None)
    st.add_argument("--max-rate", type=float, default=None)
    st.add_argument("--risk-aversion", type=float, default=0.0)
    st.add_argument("--volatility", type=float, default=0.0)
    st.add_argument("--impact", type=float, default=0.0)
    st.add_argument("--display-quantity", type=int, default=0, help="ICEBERG")
    for name, what in (("get", "one algo, its children and TCA"), ("stop", "stop an algo")):
        p = sub.add_parser(name, help=what)
        p.add_argument("algo_id")
        if name == "stop":
            p.add_argument("--reason", default="")
    ls = sub.add_parser("list", help="an account's algos, newest first")
    ls.add_argument("--account", required=True)
    ls.add_argument("--working", action="store_true", help="only algos still working")


def _algo(ns: argparse.Namespace, stub: Any, pb: Any) -> list[Any]:
    if ns.algo_action == "start":
        request = pb.StartAlgoRequest(
            account=ns.account,
            client_algo_id=ns.client_algo_id,
            symbol=ns.symbol,
            side=ns.side,
            quantity=ns.quantity,
            kind=ns.kind,
            venue=ns.venue,
            start_time_ns=ns.start_time_ns,
            end_time_ns=ns.end_time_ns,
            duration_s=ns.duration_s,
            slices=ns.slices,
            randomize=ns.randomize,
            seed=ns.seed,
            curve=ns.curve,
            participation_rate=ns.rate,
            risk_aversion=ns.risk_aversion,
            volatility=ns.volatility,
            impact=ns.impact,
            display_quantity=ns.display_quantity,
        )
        for name in ("limit_price", "min_rate", "max_rate"):
            value = getattr(ns, name)
            if value is not None:
                setattr(request, name, value)
        return [stub.StartAlgo(request, timeout=30)]
    if ns.algo_action == "get":
        return [stub.GetAlgo(pb.GetAlgoRequest(algo_id=ns.algo_id), timeout=30)]
    if ns.algo_action == "stop":
        request = pb.StopAlgoRequest(algo_id=ns.algo_id, reason=ns.reason)
        return [stub.StopAlgo(request, timeout=30)]
    listing = pb.ListAlgosRequest(account=ns.account, working_only=ns.working)
    return list(stub.ListAlgos(listing, timeout=30).algos)


def positions_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="tradecore positions", description="an account's positions")
    _common(ap)
    ap.add_argument("--account", required=True)
    return ap


def _run(what: str, ns: argparse.Namespace, body: Any) -> int:
    try:
        target = service_target(ns.data_dir, ns.target, "execution")
    except ValueError as exc:
        print(f"tradecore {what}: {exc}", file=sys.stderr)
        return 2
    if target is None:
        print(
            f"tradecore {what}: the mesh is not running (no "
            f"{Path(ns.data_dir).resolve()}/mesh.json)",
            file=sys.stderr,
        )
        return 3
    from tradecore_api.execution.v1 import execution_pb2 as pb
    from tradecore_api.execution.v1 import execution_pb2_grpc as pb_grpc

    with grpc.insecure_channel(target) as channel:
        stub = pb_grpc.ExecutionServiceStub(channel)
        try:
            for message in body(stub, pb):
                print(message_json(message))
            return 0
        except grpc.RpcError as exc:
            code = exc.code()
            print(f"tradecore {what}: {code.name}: {exc.details()}", file=sys.stderr)
            if code == grpc.StatusCode.INVALID_ARGUMENT:
                return 2
            if code in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED):
                return 3
            return 1


def order_main(argv: list[str]) -> int:
    ns = order_parser().parse_args(argv)

    def body(stub: Any, pb: Any) -> list[Any]:
        if ns.action == "submit":
            request = pb.SubmitOrderRequest(
                account=ns.account,
                client_order_id=ns.client_order_id,
                symbol=ns.symbol,
                side=ns.side,
                quantity=ns.quantity,
                type=ns.type,
                time_in_force=ns.time_in_force,
                venue=ns.venue,
            )
            if ns.limit_price is not None:
                request.limit_price = ns.limit_price
            if ns.stop_price is not None:
                request.stop_price = ns.stop_price
            return [stub.SubmitOrder(request, timeout=30)]
        if ns.action == "cancel":
            return [stub.CancelOrder(pb.CancelOrderRequest(order_id=ns.order_id), timeout=30)]
        if ns.action == "get":
            return [stub.GetOrder(pb.GetOrderRequest(order_id=ns.order_id), timeout=30)]
        if ns.action == "algo":
            return _algo(ns, stub, pb)
        request = pb.ListOrdersRequest(account=ns.account, open_only=ns.open, limit=ns.limit)
        return list(stub.ListOrders(request, timeout=30).orders)

    what = f"order algo {ns.algo_action}" if ns.action == "algo" else f"order {ns.action}"
    return _run(what, ns, body)


def positions_main(argv: list[str]) -> int:
    ns = positions_parser().parse_args(argv)

    def body(stub: Any, pb: Any) -> list[Any]:
        request = pb.GetPositionsRequest(account=ns.account)
        return list(stub.GetPositions(request, timeout=30).positions)

    return _run("positions", ns, body)
