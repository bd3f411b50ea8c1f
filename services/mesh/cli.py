"""The ``tradecore`` command: run the mesh (up/status/down) and offline tools (replay)."""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from .components import check_ports
from .config import MeshConfig

UP_TIMEOUT_S = 60.0


# Port flags: (MeshConfig field, help); the flag is the field with dashes, the variable
# TRADECORE_<FIELD>.
_PORT_FLAGS = (
    ("gateway_port", "gateway port, gRPC and JSON"),
    ("admin_port", "Envoy admin port, loopback only"),
    ("nats_port", "embedded NATS port"),
    ("nats_monitor_port", "embedded NATS monitoring port"),
    ("pricing_port", "PricingService gRPC port"),
    ("pricing_metrics_port", "PricingService Prometheus port"),
    ("marketdata_port", "MarketDataService gRPC port"),
    ("marketdata_metrics_port", "MarketDataService Prometheus port"),
)


def _add_mesh_args(p: argparse.ArgumentParser, defaults: MeshConfig) -> None:
    p.add_argument(
        "--data-dir",
        default=defaults.data_dir,
        help="state, logs and embedded databases (TRADECORE_DATA_DIR)",
    )
    p.add_argument(
        "--gateway-host",
        default=defaults.host,
        help="gateway bind address (TRADECORE_GATEWAY_HOST)",
    )
    for name, what in _PORT_FLAGS:
        p.add_argument(
            "--" + name.replace("_", "-"),
            type=int,
            default=getattr(defaults, name),
            help=f"{what} (TRADECORE_{name.upper()})",
        )
    p.add_argument(
        "--nats-url",
        default=defaults.nats_url,
        help="use an existing NATS server instead of the embedded one",
    )
    p.add_argument(
        "--clickhouse-dsn",
        default=defaults.clickhouse_dsn,
        help="use an existing ClickHouse (http://...) instead of embedded chDB",
    )


def _config(ns: argparse.Namespace) -> MeshConfig:
    cfg = MeshConfig(
        data_dir=str(Path(ns.data_dir).resolve()),
        host=ns.gateway_host,
        nats_url=ns.nats_url,
        clickhouse_dsn=ns.clickhouse_dsn,
        **{name: getattr(ns, name) for name, _ in _PORT_FLAGS},
    )
    cfg.validate()
    return cfg


def _read_state(data_dir: str) -> dict[str, Any] | None:
    path = Path(data_dir).resolve() / "mesh.json"
    try:
        return dict(json.loads(path.read_text()))
    except (OSError, ValueError):
        return None


def _alive(pid: int | None) -> bool:
    if not pid:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie counts as gone.
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(")")[-1].split()[0] != "Z"
    except OSError:
        return True


def _print_endpoints(state: dict[str, Any]) -> None:
    for name, comp in state.get("components", {}).items():
        print(f"  {name:<8} {comp['endpoint']}")


def cmd_up(ns: argparse.Namespace) -> int:
    cfg = _config(ns)
    state = _read_state(cfg.data_dir)
    if state and _alive(state.get("supervisor_pid")):
        print(
            f"tradecore is already running (supervisor pid {state['supervisor_pid']}); "
            "run `tradecore down` first",
            file=sys.stderr,
        )
        return 1
    try:
        check_ports(cfg)
    except RuntimeError as exc:
        print(f"tradecore up: {exc}", file=sys.stderr)
        return 1
    cfg.data_path.mkdir(parents=True, exist_ok=True)
    argv = [
        sys.executable,
        "-m",
        "tradecore_services.mesh.supervisor",
        "--config-json",
        cfg.to_json(),
    ]
    if ns.foreground:
        from .supervisor import main as supervisor_main

        print("tradecore: starting the mesh in the foreground (Ctrl-C stops it)")
        return supervisor_main(["--config-json", cfg.to_json()])
    logs = cfg.data_path / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    sup_log = logs / "supervisor.log"
    started = time.monotonic()
    with open(sup_log, "ab") as out:
        proc = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=out,
            start_new_session=True,
            cwd=str(cfg.data_path),
        )
    while time.monotonic() - started < UP_TIMEOUT_S:
        if proc.poll() is not None:
            print(
                f"tradecore up failed (supervisor exited with code {proc.returncode}):",
                file=sys.stderr,
            )
            print(_tail(sup_log), file=sys.stderr)
            return 1
        state = _read_state(cfg.data_dir)
        if state and state.get("state") == "ready":
            elapsed = time.monotonic() - started
            print(
                f"tradecore is up in {elapsed:.1f}s (supervisor pid {proc.pid}, "
                f"data {cfg.data_path})"
            )
            _print_endpoints(state)
            print("Run `tradecore status` to check it and `tradecore down` to stop it.")
            return 0
        time.sleep(0.1)
    print(f"tradecore up: not healthy after {UP_TIMEOUT_S:.0f}s; stopping", file=sys.stderr)
    print(_tail(sup_log), file=sys.stderr)
    _stop(cfg.data_dir)
    return 1


def _tail(path: Path, lines: int = 20) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


def cmd_status(ns: argparse.Namespace) -> int:
    cfg = _config(ns)
    state = _read_state(cfg.data_dir)
    if not state or not _alive(state.get("supervisor_pid")):
        print(f"tradecore is not running (data dir {cfg.data_path})")
        return 3
    from .components import components

    specs = {c.name: c for c in components(MeshConfig(**state["config"]), Path("unused"))}
    healthy = True
    print(f"tradecore {state['state']} (supervisor pid {state['supervisor_pid']})")
    for name, comp in state["components"].items():
        ok, detail = specs[name].health() if name in specs else (False, "unknown")
        alive = _alive(comp.get("pid"))
        ok = ok and alive
        healthy &= ok
        word = "healthy" if ok else "UNHEALTHY"
        print(
            f"  {name:<8} {word:<9} pid {comp.get('pid')!s:<7} restarts {comp['restarts']:<3} "
            f"{comp['endpoint']}" + ("" if ok else f"  [{detail}]")
        )
    healthy &= state["state"] == "ready"
    return 0 if healthy else 1


def _stop(data_dir: str, timeout: float = 30.0) -> bool:
    state = _read_state(data_dir)
    if not state:
        return False
    sup = state.get("supervisor_pid")
    pids = [c.get("pid") for c in state.get("components", {}).values() if c.get("pid")]
    if isinstance(sup, int) and _alive(sup):
        os.kill(sup, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while _alive(sup) and time.monotonic() < deadline:
            time.sleep(0.1)
    # Whatever is left (a supervisor that hung or was killed): kill the group and the children.
    pgid = state.get("pgid")
    if pgid and pgid != os.getpgid(0):
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pgid, signal.SIGKILL)
    for pid in [sup, *pids]:
        if _alive(pid):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
    (Path(data_dir).resolve() / "mesh.json").unlink(missing_ok=True)
    return True


def cmd_down(ns: argparse.Namespace) -> int:
    cfg = _config(ns)
    if not _stop(cfg.data_dir):
        print(f"tradecore is not running (data dir {cfg.data_path})")
        return 0
    print("tradecore is down")
    return 0


def cmd_replay(ns: argparse.Namespace, rest: list[str]) -> int:
    if ns.format != "lobster":
        print(
            f"tradecore replay: unknown format {ns.format!r} (supported: lobster)", file=sys.stderr
        )
        return 2
    try:
        from tradecore.lobster import replay_main
    except ImportError:
        print("tradecore replay: this build has no LOBSTER replay", file=sys.stderr)
        return 2
    return int(replay_main(rest))


def build_parser() -> argparse.ArgumentParser:
    defaults = MeshConfig.from_env()
    ap = argparse.ArgumentParser(prog="tradecore", description=__doc__)
    sub = ap.add_subparsers(dest="command", required=True)
    up = sub.add_parser("up", help="start the mesh (NATS, services, Envoy gateway)")
    _add_mesh_args(up, defaults)
    up.add_argument(
        "--foreground", action="store_true", help="stay attached; Ctrl-C stops everything"
    )
    st = sub.add_parser("status", help="show each component's health (non-zero if unhealthy)")
    _add_mesh_args(st, defaults)
    dn = sub.add_parser("down", help="stop the mesh and every process it started")
    _add_mesh_args(dn, defaults)
    rp = sub.add_parser("replay", help="replay market data files offline")
    rp.add_argument("format", help="lobster")
    sub.add_parser(
        "feed",
        help="market data feeds of the running mesh (lobster|synthetic|list|status|stop)",
        add_help=False,
    )
    return ap


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if args[:1] == ["feed"]:
        from .feed_cli import feed_main

        return feed_main(args[1:])
    ap = build_parser()
    ns, rest = ap.parse_known_args(args)
    if ns.command == "replay":
        return cmd_replay(ns, rest)
    if rest:
        ap.error(f"unrecognized arguments: {' '.join(rest)}")
    try:
        handler = {"up": cmd_up, "status": cmd_status, "down": cmd_down}[ns.command]
        return handler(ns)
    except ValueError as exc:
        print(f"tradecore {ns.command}: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
