"""``tradecore trace``: one trace of the running mesh as a tree with per-hop latency, read from
the JetStream stream ``TELEMETRY_SPANS`` where the services keep their spans when no OTLP
endpoint is set (services/common/tracing.py).

    tradecore trace <trace id> [--json] [--wait S] [--data-dir D | --nats-url URL]
    tradecore trace --recent [N] [--since S] [--json] [--data-dir D | --nats-url URL]

Exit status: 0 shown; 1 no span of that trace (or none recent); 2 bad input or no mesh.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime
import json
import re
import sys
import time
from typing import Any

_TRACE_ID = re.compile(r"[0-9a-f]{32}")
MAX_ATTRIBUTES_SHOWN = 160  # characters of a span's attributes on its line


def trace_parser() -> argparse.ArgumentParser:
    from .cli import _add_mesh_args
    from .config import MeshConfig

    ap = argparse.ArgumentParser(prog="tradecore trace", description=__doc__.split("\n")[0])
    _add_mesh_args(ap, MeshConfig.from_env())
    ap.add_argument("trace_id", nargs="?", default="", help="32 hex digits (x-trace-id)")
    ap.add_argument("--json", action="store_true", help="the spans as JSON, in tree order")
    ap.add_argument(
        "--wait", type=float, default=0.0, help="seconds to wait for the trace's spans to arrive"
    )
    ap.add_argument(
        "--recent", type=int, nargs="?", const=20, default=0, help="list the newest N traces"
    )
    ap.add_argument(
        "--since", type=float, default=600.0, help="with --recent: look back this many seconds"
    )
    return ap


def _nats_url(ns: argparse.Namespace) -> str | None:
    """The mesh's NATS: --nats-url, else the running mesh's from its mesh.json."""
    if ns.nats_url:
        return str(ns.nats_url)
    from .cli import _read_state
    from .config import MeshConfig

    state = _read_state(MeshConfig(data_dir=ns.data_dir))
    if state is None:
        return None
    cfg = state.get("config", {})
    return str(cfg.get("nats_url") or f"nats://127.0.0.1:{cfg.get('nats_port', 4222)}")


async def read_spans(url: str, subject: str, start_time: float = 0.0) -> list[dict[str, Any]]:
    """The span records stored on ``subject`` (from ``start_time``, a Unix time, when given)."""
    import nats
    from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy
    from nats.js.errors import NotFoundError

    from ..common.tracing import SPANS_STREAM

    nc = await nats.connect(servers=[u.strip() for u in url.split(",")], connect_timeout=3)
    try:
        js = nc.jetstream(timeout=5.0)
        try:
            await js.stream_info(SPANS_STREAM)
        except NotFoundError:
            return []
        config = ConsumerConfig(
            deliver_policy=DeliverPolicy.BY_START_TIME if start_time else DeliverPolicy.ALL,
            opt_start_time=datetime.datetime.fromtimestamp(start_time, datetime.UTC)
            if start_time
            else None,
            ack_policy=AckPolicy.NONE,
            inactive_threshold=30.0,
        )
        sub = await js.pull_subscribe(subject, stream=SPANS_STREAM, config=config)
        out: list[dict[str, Any]] = []
        try:
            pending = (await sub.consumer_info()).num_pending or 0
            while pending > 0:
                for m in await sub.fetch(min(256, pending), timeout=5.0):
                    with contextlib.suppress(ValueError):  # not a span batch: skipped
                        out.extend(json.loads(m.data))
                    pending = m.metadata.num_pending
        finally:
            await sub.unsubscribe()
        return out
    finally:
        await nc.close()


def tree(spans: list[dict[str, Any]]) -> list[tuple[int, dict[str, Any]]]:
    """(depth, span) in tree order: roots (no parent, or a parent not stored, such as the
    gateway's) by start time, each followed by its children by start time."""
    by_id = {s["span_id"]: s for s in spans}
    children: dict[str, list[dict[str, Any]]] = {}
    roots = []
    for s in spans:
        if s["parent_id"] and s["parent_id"] in by_id:
            children.setdefault(s["parent_id"], []).append(s)
        else:
            roots.append(s)
    out: list[tuple[int, dict[str, Any]]] = []

    def walk(s: dict[str, Any], depth: int) -> None:
        out.append((depth, s))
        for c in sorted(children.get(s["span_id"], ()), key=lambda x: x["start_ns"]):
            walk(c, depth + 1)

    for r in sorted(roots, key=lambda x: x["start_ns"]):
        walk(r, 0)
    return out


def hops(spans: list[dict[str, Any]]) -> dict[str, float]:
    """For each span that starts on another service than its parent: the time from its
    parent's start to its own (ms): the hop's latency (message or call in transit, queued)."""
    by_id = {s["span_id"]: s for s in spans}
    out = {}
    for s in spans:
        parent = by_id.get(s["parent_id"])
        if parent is not None and parent["service"] != s["service"]:
            out[s["span_id"]] = (s["start_ns"] - parent["start_ns"]) / 1e6
    return out


def render(trace_id: str, spans: list[dict[str, Any]]) -> str:
    ordered = tree(spans)
    t0 = min(s["start_ns"] for s in spans)
    t1 = max(s["end_ns"] for s in spans)
    services = sorted({s["service"] for s in spans})
    hop = hops(spans)
    lines = [
        f"trace {trace_id}: {len(spans)} spans, services {', '.join(services)}, "
        f"{(t1 - t0) / 1e6:.3f} ms",
        f"{'start ms':>10} {'dur ms':>9} {'hop ms':>8}  {'service':<12} span",
    ]
    for depth, s in ordered:
        name = s["name"]
        extra = [
            f"{k}={v}" for k, v in sorted(s.get("attributes", {}).items()) if v not in ("", "-")
        ]
        if s["status"] == "ERROR":
            extra.append(f"ERROR {s.get('message', '')}".strip())
        if depth == 0 and s["parent_id"]:
            extra.append(f"parent {s['parent_id']} not stored")
        h = hop.get(s["span_id"])
        shown = " ".join(extra)
        if len(shown) > MAX_ATTRIBUTES_SHOWN:  # Envoy's spans carry many tags: --json has all
            shown = shown[: MAX_ATTRIBUTES_SHOWN - 1] + "…"
        lines.append(
            f"{(s['start_ns'] - t0) / 1e6:>10.3f} {(s['end_ns'] - s['start_ns']) / 1e6:>9.3f} "
            f"{'' if h is None else f'{h:.3f}':>8}  {s['service']:<12} {'  ' * depth}{name}"
            + (f"  [{shown}]" if shown else "")
        )
    return "\n".join(lines)


def recent(spans: list[dict[str, Any]], n: int) -> list[dict[str, Any]]:
    """The newest ``n`` traces: id, first span's name, services, spans, duration (ms)."""
    by_trace: dict[str, list[dict[str, Any]]] = {}
    for s in spans:
        by_trace.setdefault(s["trace_id"], []).append(s)
    rows = []
    for tid, group in by_trace.items():
        first = tree(group)[0][1]
        t0 = min(s["start_ns"] for s in group)
        rows.append(
            {
                "trace_id": tid,
                "start_ns": t0,
                "root": first["name"],
                "services": sorted({s["service"] for s in group}),
                "spans": len(group),
                "duration_ms": (max(s["end_ns"] for s in group) - t0) / 1e6,
            }
        )
    rows.sort(key=lambda r: r["start_ns"], reverse=True)
    return rows[:n]


def trace_main(argv: list[str]) -> int:
    from ..common.tracing import SPANS_SUBJECT, spans_subject

    ns = trace_parser().parse_args(argv)
    trace_id = ns.trace_id.strip().lower()
    if not ns.recent and not _TRACE_ID.fullmatch(trace_id):
        print(
            f"tradecore trace: trace_id: 32 hex digits expected, got {ns.trace_id[:40]!r}",
            file=sys.stderr,
        )
        return 2
    if ns.recent < 0 or ns.wait < 0 or ns.since <= 0:
        print("tradecore trace: --recent, --wait and --since must be positive", file=sys.stderr)
        return 2
    url = _nats_url(ns)
    if url is None:
        print(f"tradecore trace: no mesh running in {ns.data_dir}", file=sys.stderr)
        return 2
    try:
        if ns.recent:
            spans = asyncio.run(read_spans(url, f"{SPANS_SUBJECT}.*", time.time() - ns.since))
            rows = recent(spans, ns.recent)
            if ns.json:
                print(json.dumps(rows))
            for r in [] if ns.json else rows:
                print(
                    f"{r['trace_id']}  {r['duration_ms']:>9.3f} ms  {r['spans']:>3} spans  "
                    f"{','.join(r['services'])}  {r['root']}"
                )
            return 0 if rows else 1
        deadline = time.monotonic() + ns.wait
        while True:
            spans = asyncio.run(read_spans(url, spans_subject(trace_id)))
            if spans or time.monotonic() >= deadline:
                break
            time.sleep(0.2)
    except Exception as exc:
        print(f"tradecore trace: cannot read spans from {url}: {exc}", file=sys.stderr)
        return 2
    if not spans:
        print(f"tradecore trace: no spans of trace {trace_id}", file=sys.stderr)
        return 1
    if ns.json:
        print(json.dumps([{**s, "depth": d} for d, s in tree(spans)]))
    else:
        print(render(trace_id, spans))
    return 0
