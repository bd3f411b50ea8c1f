"""``tradecore access``: the gateway's access audit (who called which route, the result, the
latency), newest first, one JSON object per line."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from .config import MeshConfig


def build_parser() -> argparse.ArgumentParser:
    defaults = MeshConfig.from_env()
    ap = argparse.ArgumentParser(prog="tradecore access", description=__doc__.split("\n")[0])
    ap.add_argument("--data-dir", default=defaults.data_dir)
    ap.add_argument(
        "--clickhouse-dsn",
        default=defaults.clickhouse_dsn,
        help="the mesh's ClickHouse server, when it uses one (TRADECORE_CLICKHOUSE_DSN)",
    )
    ap.add_argument("--since", default="", help="30s, 10m, 2h, 7d or an ISO 8601 time")
    ap.add_argument("--who", default="", help="a token's subject, account or role, or a client "
                    "certificate's subject")  # fmt: skip
    ap.add_argument("--route", default="", help="part of a route name or path (Price, /v1/...)")
    ap.add_argument(
        "--status", default="", help="an HTTP code (429), a class (4xx), a gRPC status name "
        "(RESOURCE_EXHAUSTED) or 'denied'",
    )  # fmt: skip
    ap.add_argument("--limit", type=int, default=100)
    return ap


def access_main(argv: list[str]) -> int:
    ns = build_parser().parse_args(argv)
    from . import access

    data = Path(ns.data_dir).resolve()
    filters = {
        "since": ns.since,
        "who": ns.who,
        "route": ns.route,
        "status": ns.status,
        "limit": ns.limit,
    }
    try:
        try:
            rows = access.request(data, {"op": "query", "filters": filters})
        except OSError:
            # No access component answers (the mesh is down): open the store here.
            from tradecore.store import connect, default_dsn

            dsn = ns.clickhouse_dsn or default_dsn(data, "access")
            if dsn.startswith("chdb://") and not (data / "clickhouse" / "access").is_dir():
                print(f"tradecore access: no access audit under {data}", file=sys.stderr)
                return 3
            with connect(dsn, access.MIGRATIONS) as store:
                rows = access.query(store, filters)
    except ValueError as exc:
        print(f"tradecore access: {exc}", file=sys.stderr)
        return 2
    for row in rows:
        print(json.dumps(row, default=str))
    return 0


if __name__ == "__main__":
    raise SystemExit(access_main(sys.argv[1:]))
