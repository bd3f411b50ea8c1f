"""The ``tradecore`` command: run the mesh (up/status/down) and offline tools (replay, audit)."""

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
from typing import Any, NoReturn

from ..registry import SERVICES, ServiceSpec
from .components import check_ports
from .config import MeshConfig, settings
from .procs import Leftover, leftovers, pgid_of, running, stop

UP_TIMEOUT_S = 60.0
# How long a process a dead supervisor left behind gets to exit on SIGTERM before SIGKILL.
LEFTOVER_STOP_S = 5.0


def _add_mesh_args(p: argparse.ArgumentParser, defaults: MeshConfig) -> None:
    """The flags of ``settings()`` (a port flag per registered service), defaulting to
    ``defaults`` (which come from the variables)."""
    values = defaults.as_dict()
    for s in settings(defaults.services):
        p.add_argument(
            s.flag,
            dest=s.key,
            type=int if s.is_port else str,
            default=values[s.key],
            help=f"{s.meaning} ({s.variable})",
        )


def _config(ns: argparse.Namespace, services: tuple[ServiceSpec, ...] = SERVICES) -> MeshConfig:
    values = {s.key: getattr(ns, s.key) for s in settings(services)}
    values["data_dir"] = str(Path(ns.data_dir).resolve())
    if values.get("auth_jwks_file"):
        values["auth_jwks_file"] = str(Path(values["auth_jwks_file"]).resolve())
    cfg = MeshConfig.from_dict(values, services)
    cfg.validate()
    return cfg


def _read_state(cfg: MeshConfig) -> dict[str, Any] | None:
    """The supervisor's ``mesh.json`` (None when there is none); a ValueError naming the file
    when it cannot be read."""
    if not cfg.data_dir_exists():
        return None
    path = cfg.state_file
    try:
        return dict(json.loads(path.read_text()))
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise ValueError(f"cannot read {path}: {exc.strerror or exc}") from None
    except ValueError:
        raise ValueError(f"{path} is not valid JSON; remove it if no mesh runs") from None


def _supervisor_running(state: dict[str, Any]) -> bool:
    return running(state.get("supervisor_pid"), state.get("supervisor_start"))


def _describe(left: list[Leftover], state: dict[str, Any]) -> str:
    try:
        ports = MeshConfig.from_dict(state["config"]).component_ports()
    except (KeyError, TypeError, ValueError):
        ports = {}
    parts = []
    for item in left:
        where = ", ".join(str(p) for p in ports.get(item.name, []))
        parts.append(f"{item.name} (pid {item.pid}" + (f", ports {where})" if where else ")"))
    return "; ".join(parts)


def _stop_leftovers(state: dict[str, Any], also: list[int] | None = None) -> None:
    """Stop the recorded processes that still run (and ``also``), then whatever else is left in
    their process group (only while one of ours is in it: a group id is reused too)."""
    pids = [item.pid for item in leftovers(state)] + [p for p in also or [] if running(p)]
    group = state.get("pgid")
    ours_in_group = (
        isinstance(group, int) and group != os.getpgid(0) and group in map(pgid_of, pids)
    )
    stop(pids, LEFTOVER_STOP_S)
    if ours_in_group:
        assert isinstance(group, int)
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(group, signal.SIGKILL)


def _print_endpoints(state: dict[str, Any]) -> None:
    for name, comp in state.get("components", {}).items():
        print(f"  {name:<8} {comp['endpoint']}")


def cmd_up(ns: argparse.Namespace) -> int:
    from .auth import prepare as prepare_auth

    cfg = _config(ns)
    cfg.prepare_data_dir()
    prepare_auth(cfg)
    state = _read_state(cfg)
    if state and _supervisor_running(state):
        print(
            f"tradecore is already running (supervisor pid {state['supervisor_pid']}); "
            "run `tradecore down` first",
            file=sys.stderr,
        )
        return 1
    if state:
        # The supervisor died without stopping: stop what it left before taking its ports.
        left = leftovers(state)
        if left:
            print(
                f"tradecore: the previous supervisor (pid {state.get('supervisor_pid')}) died; "
                f"stopping what it left running: {_describe(left, state)}"
            )
            _stop_leftovers(state)
        cfg.state_file.unlink(missing_ok=True)
    try:
        check_ports(cfg)
    except RuntimeError as exc:
        print(f"tradecore up: {exc}", file=sys.stderr)
        return 1
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
    sup_log = cfg.data_path / "logs" / "supervisor.log"
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
        state = _read_state(cfg)
        if state and state.get("supervisor_pid") == proc.pid and state.get("state") == "ready":
            elapsed = time.monotonic() - started
            print(
                f"tradecore is up in {elapsed:.1f}s (supervisor pid {proc.pid}, "
                f"data {cfg.data_path})"
            )
            _print_endpoints(state)
            if cfg.auth == "on" and not cfg.auth_jwks_file:
                print(
                    "The gateway asks for a token: `tradecore token --role admin` mints one "
                    "(docs/api.md, Authentication and roles)."
                )
            print("Run `tradecore status` to check it and `tradecore down` to stop it.")
            return 0
        time.sleep(0.1)
    print(f"tradecore up: not healthy after {UP_TIMEOUT_S:.0f}s; stopping", file=sys.stderr)
    print(_tail(sup_log), file=sys.stderr)
    _stop(cfg)
    return 1


def _tail(path: Path, lines: int = 20) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


def cmd_status(ns: argparse.Namespace) -> int:
    cfg = _config(ns)
    if not cfg.data_dir_exists():
        print(f"tradecore is not running (data dir {cfg.data_path} does not exist)")
        return 3
    state = _read_state(cfg)
    if not state:
        print(f"tradecore is not running (data dir {cfg.data_path})")
        return 3
    if not _supervisor_running(state):
        sup = state.get("supervisor_pid")
        left = leftovers(state)
        if left:
            print(
                f"tradecore is not running: its supervisor (pid {sup}) died and left "
                f"{len(left)} process{'es' if len(left) > 1 else ''} running: "
                f"{_describe(left, state)}; run `tradecore down` to stop them"
            )
        else:
            print(
                f"tradecore is not running (data dir {cfg.data_path}; its supervisor, pid {sup}, "
                "died and nothing it started is left)"
            )
        return 3
    from .components import components

    specs = {c.name: c for c in components(MeshConfig.from_dict(state["config"]), Path("unused"))}
    healthy = True
    print(f"tradecore {state['state']} (supervisor pid {state['supervisor_pid']})")
    for name, comp in state["components"].items():
        pid = comp.get("pid")
        if comp.get("state") == "restarting":
            ok, word = False, "RESTARTING"
            left_s = max(0.0, float(comp.get("restart_at") or 0.0) - time.time())
            detail = f"exited with code {comp.get('exit_code')}; next start in {left_s:.1f}s"
        else:
            ok, detail = specs[name].health() if name in specs else (False, "unknown")
            if not running(pid, comp.get("start")):
                ok, detail = False, "process not running"
            word = (
                "healthy" if ok else "STARTING" if comp.get("state") == "starting" else "UNHEALTHY"
            )
        healthy &= ok
        print(
            f"  {name:<8} {word:<10} pid {pid or '-'!s:<7} restarts {comp['restarts']:<3} "
            f"{comp['endpoint']}" + ("" if ok else f"  [{detail}]")
        )
    healthy &= state["state"] == "ready"
    return 0 if healthy else 1


def _stop(cfg: MeshConfig, timeout: float = 30.0) -> bool:
    """Stop the mesh of ``cfg``'s data dir: SIGTERM to its supervisor (which stops its children),
    then whatever is left. False when there is nothing to stop."""
    state = _read_state(cfg)
    if not state:
        return False
    sup = state.get("supervisor_pid")
    also = []
    if isinstance(sup, int) and _supervisor_running(state):
        os.kill(sup, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while _supervisor_running(state) and time.monotonic() < deadline:
            time.sleep(0.1)
        if _supervisor_running(state):
            also.append(sup)
    # Whatever is left (a supervisor that hung or died, the children it left).
    _stop_leftovers(state, also)
    cfg.state_file.unlink(missing_ok=True)
    return True


def cmd_down(ns: argparse.Namespace) -> int:
    cfg = _config(ns)
    if not _stop(cfg):
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


def cmd_serve(name: str) -> NoReturn:
    """Become the service ``name`` (``python -m <module>``): one process per container, its
    settings from the TRADECORE_* variables, signals delivered to it directly."""
    from ..registry import by_name

    module = by_name(name).module
    os.execv(sys.executable, [sys.executable, "-m", module])


def build_parser(services: tuple[ServiceSpec, ...] = SERVICES) -> argparse.ArgumentParser:
    defaults = MeshConfig.from_env(services)
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
    sub.add_parser(
        "audit",
        help="verify, export and prove the audit trail (verify|export|prove|keygen)",
        add_help=False,
    )
    sub.add_parser(
        "order", help="orders of the running mesh (submit|cancel|get|list)", add_help=False
    )
    sub.add_parser("positions", help="an account's positions in the running mesh", add_help=False)
    sub.add_parser(
        "token",
        help="mint a gateway token (--role, --account, --ttl) or rotate the key",
        add_help=False,
    )
    sub.add_parser("trace", help="one trace of the running mesh, per-hop latency", add_help=False)
    sv = sub.add_parser("serve", help="run one registered service in the foreground (containers)")
    sv.add_argument("service", choices=[s.name for s in services])
    sub.add_parser("deploy", help="write Kubernetes manifests from the registry", add_help=False)
    sub.add_parser("backup", help="archive the data directory (mesh stopped)", add_help=False)
    sub.add_parser("restore", help="restore a backup into an empty data directory", add_help=False)
    sub.add_parser(
        "model",
        help="model registry and traffic policies of the running mesh "
        "(list|show|register|alias|rollback|policy|report)",
        add_help=False,
    )
    sub.add_parser("train", help="train a model offline (surrogate|signal)", add_help=False)
    sub.add_parser("chaos", help="load, kill -9 each component, count losses", add_help=False)
    sub.add_parser(
        "access",
        help="the gateway's access audit (--since --who --route --status)",
        add_help=False,
    )
    sub.add_parser("cert", help="gateway certificates: client --name X | server", add_help=False)
    return ap


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if args[:1] == ["feed"]:
        from .feed_cli import feed_main

        return feed_main(args[1:])
    if args[:1] == ["audit"]:
        from .audit_cli import audit_main

        return audit_main(args[1:])
    if args[:1] == ["order"]:
        from .order_cli import order_main

        return order_main(args[1:])
    if args[:1] == ["backup"]:
        from .backup import backup_main

        return backup_main(args[1:])
    if args[:1] == ["restore"]:
        from .backup import restore_main

        return restore_main(args[1:])
    if args[:1] == ["deploy"]:
        from .deploy import deploy_main

        return deploy_main(args[1:])
    if args[:1] == ["model"]:
        from .model_cli import model_main

        return model_main(args[1:])
    if args[:1] == ["token"]:
        from .auth import token_main

        return token_main(args[1:])
    if args[:1] == ["trace"]:
        from .trace_cli import trace_main

        return trace_main(args[1:])
    if args[:1] == ["access"]:
        from .access_cli import access_main

        return access_main(args[1:])
    if args[:1] == ["cert"]:
        from .tls import cert_main

        return cert_main(args[1:])
    if args[:1] == ["positions"]:
        from .order_cli import positions_main

        return positions_main(args[1:])
    if args[:1] == ["train"]:
        from .train_cli import train_main

        return train_main(args[1:])
    if args[:1] == ["chaos"]:
        from .chaos import chaos_main

        return chaos_main(args[1:])
    ap = build_parser()
    ns, rest = ap.parse_known_args(args)
    if ns.command == "replay":
        return cmd_replay(ns, rest)
    if rest:
        ap.error(f"unrecognized arguments: {' '.join(rest)}")
    if ns.command == "serve":
        cmd_serve(ns.service)
    try:
        handler = {"up": cmd_up, "status": cmd_status, "down": cmd_down}[ns.command]
        return handler(ns)
    except ValueError as exc:
        print(f"tradecore {ns.command}: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
