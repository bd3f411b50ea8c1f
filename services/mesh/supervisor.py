"""The mesh supervisor: starts every component in order, waits for each to be healthy,
restarts a child that dies (with backoff, logged), and stops everything on SIGTERM/SIGINT.

Every child is started through ``die_with_parent.py``, so it gets SIGTERM if the supervisor
dies without stopping it (SIGKILL, OOM kill). The supervisor spawns from its main thread only:
the kernel sends that signal when the *thread* that forked the child exits.

It records its state in ``<data_dir>/mesh.json`` for ``tradecore status`` and ``down``: pids
with their start times (so a reused pid is not mistaken for ours), and each child's state:
``starting`` (spawned, not yet healthy), ``running`` or ``restarting`` (exited; ``exit_code``,
and ``restart_at`` in Unix time).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from tradecore_gateway.generate import descriptor_path, write_config

from .components import Component, check_ports, child_env, components, gateway_config
from .config import MeshConfig
from .procs import start_time

log = logging.getLogger("tradecore.mesh")

START_TIMEOUT_S = 20.0
STOP_TIMEOUT_S = 10.0
BACKOFF_MIN_S = 0.5
BACKOFF_MAX_S = 30.0


OUTPUT_LOG_MAX_BYTES = 10 << 20


def open_output_log(path: Path) -> IO[bytes]:
    """A child's stdout/stderr file, opened for appending at each (re)start; one over
    ``OUTPUT_LOG_MAX_BYTES`` is first moved to ``<name>.log.1`` (replacing the previous one), so
    a crash-looping child cannot fill the disk. The services log to their own rotated files
    (services/common/server.py); only what escapes those (crash tracebacks, gRPC core, NATS
    and Envoy) lands here."""
    with contextlib.suppress(FileNotFoundError):
        if path.stat().st_size > OUTPUT_LOG_MAX_BYTES:
            path.replace(path.with_name(path.name + ".1"))
    return open(path, "ab")


@dataclass
class Child:
    spec: Component
    proc: subprocess.Popen[bytes] | None = None
    log_file: IO[bytes] | None = None
    restarts: int = 0
    backoff: float = BACKOFF_MIN_S
    restart_at: float = 0.0
    started_at: float = 0.0
    start: int | None = None  # /proc start time of proc, see procs.py
    state: str = "starting"
    exit_code: int | None = None
    exited_at: float = 0.0
    history: list[str] = field(default_factory=list)


DIE_WITH_PARENT = str(Path(__file__).with_name("die_with_parent.py"))


class Supervisor:
    def __init__(self, cfg: MeshConfig) -> None:
        self.cfg = cfg
        self.data = cfg.data_path
        self.children: list[Child] = []
        self.stopping = False
        self.state = "starting"
        # Set by SIGHUP (`tradecore token rotate`): restart the gateway to load the new JWKS.
        self.reload_gateway = False

    # ------------------------------------------------------------------ state file
    def write_state(self) -> None:
        doc: dict[str, Any] = {
            "state": self.state,
            "supervisor_pid": os.getpid(),
            "supervisor_start": start_time(os.getpid()),
            "pgid": os.getpgid(0),
            "config": json.loads(self.cfg.to_json()),
            "components": {
                c.spec.name: {
                    "pid": c.proc.pid if c.proc else None,
                    "start": c.start if c.proc else None,
                    "state": c.state,
                    "exit_code": c.exit_code,
                    "restart_at": (
                        time.time() + max(0.0, c.restart_at - time.monotonic())
                        if c.state == "restarting"
                        else None
                    ),
                    "endpoint": c.spec.endpoint,
                    "restarts": c.restarts,
                    "log": str(self.data / "logs" / f"{c.spec.name}.log"),
                }
                for c in self.children
            },
        }
        tmp = self.cfg.state_file.with_suffix(".tmp")
        tmp.write_text(json.dumps(doc, indent=2))
        tmp.replace(self.cfg.state_file)

    # ------------------------------------------------------------------ processes
    def spawn(self, child: Child) -> None:
        # PR_SET_PDEATHSIG fires when the forking thread exits, so only the main thread forks.
        if threading.current_thread() is not threading.main_thread():
            raise RuntimeError("the supervisor spawns its children from its main thread only")
        logs = self.data / "logs"
        logs.mkdir(parents=True, exist_ok=True)
        if child.log_file is not None:
            child.log_file.close()
        child.log_file = open_output_log(logs / f"{child.spec.name}.log")
        child.proc = subprocess.Popen(
            [sys.executable, "-I", "-S", DIE_WITH_PARENT, str(os.getpid()), *child.spec.argv],
            stdin=subprocess.DEVNULL,
            stdout=child.log_file,
            stderr=subprocess.STDOUT,
            env=child_env(child.spec.env),
            cwd=str(self.data),
        )
        child.started_at = time.monotonic()
        child.start = start_time(child.proc.pid)
        child.state = "starting"
        log.info("started %s (pid %d)", child.spec.name, child.proc.pid)

    def wait_healthy(self, child: Child, timeout: float = START_TIMEOUT_S) -> None:
        deadline = time.monotonic() + timeout
        detail = ""
        while time.monotonic() < deadline and not self.stopping:
            assert child.proc is not None
            if child.proc.poll() is not None:
                raise RuntimeError(
                    f"{child.spec.name} exited with code {child.proc.returncode} during start; "
                    f"see {self.data / 'logs' / (child.spec.name + '.log')}"
                )
            ok, detail = child.spec.health()
            if ok:
                child.state = "running"
                log.info("%s healthy: %s", child.spec.name, child.spec.endpoint)
                return
            time.sleep(0.1)
        raise RuntimeError(f"{child.spec.name} not healthy after {timeout:.0f}s: {detail}")

    def start(self) -> None:
        self.data.mkdir(parents=True, exist_ok=True)
        check_ports(self.cfg)
        if self.cfg.tls != "off":
            from .tls import ensure

            ensure(
                self.data,
                mutual=self.cfg.tls == "mtls",
                cert_file=self.cfg.tls_cert_file,
                key_file=self.cfg.tls_key_file,
                ca_file=self.cfg.tls_ca_file,
            )
        envoy_file = self.data / "envoy.json"
        write_config(
            envoy_file,
            gateway_config(self.cfg, descriptor_path()),
        )
        self.children = [Child(spec) for spec in components(self.cfg, envoy_file)]
        self.write_state()
        for child in self.children:
            self.spawn(child)
            self.write_state()
            self.wait_healthy(child)
        self.state = "ready"
        self.write_state()

    def restart_gateway(self) -> None:
        """Stop the gateway and start it again at once (Envoy reads the JWKS file at start)."""
        self.reload_gateway = False
        for child in self.children:
            if child.spec.name != "gateway" or child.proc is None:
                continue
            log.info("restarting the gateway to load the signing keys")
            child.proc.terminate()
            try:
                child.proc.wait(STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                child.proc.kill()
                child.proc.wait()
            self.spawn(child)
            self.write_state()

    def supervise_once(self) -> None:
        if self.reload_gateway and self.state == "ready":
            self.restart_gateway()
        now = time.monotonic()
        changed = False
        for child in self.children:
            proc = child.proc
            if proc is not None and proc.poll() is not None:
                # A run that stayed up for a minute resets the backoff.
                if now - child.started_at > 60:
                    child.backoff = BACKOFF_MIN_S
                child.restart_at = now + child.backoff
                log.warning(
                    "%s (pid %d) exited with code %s; restarting in %.1fs",
                    child.spec.name,
                    proc.pid,
                    proc.returncode,
                    child.backoff,
                )
                child.backoff = min(child.backoff * 2, BACKOFF_MAX_S)
                child.proc = None
                child.state = "restarting"
                child.exit_code = proc.returncode
                child.exited_at = now
                changed = True
            elif proc is None and now >= child.restart_at:
                child.restarts += 1
                self.spawn(child)
                changed = True
            elif proc is not None and child.state == "starting" and child.spec.health()[0]:
                child.state = "running"
                log.info(
                    "%s healthy again after %.1fs (pid %d)",
                    child.spec.name,
                    time.monotonic() - child.exited_at,
                    proc.pid,
                )
                changed = True
        if changed:
            self.write_state()

    def stop(self) -> None:
        self.stopping = True
        self.state = "stopping"
        for child in reversed(self.children):
            proc = child.proc
            if proc is None or proc.poll() is not None:
                continue
            proc.terminate()
            try:
                proc.wait(STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                log.warning("%s did not stop in %.0fs; killing", child.spec.name, STOP_TIMEOUT_S)
                proc.kill()
                proc.wait()
            log.info("stopped %s", child.spec.name)
        for child in self.children:
            if child.log_file is not None:
                child.log_file.close()
        self.cfg.state_file.unlink(missing_ok=True)

    def run(self) -> int:
        def on_signal(signum: int, _frame: object) -> None:
            self.stopping = True

        def on_hup(signum: int, _frame: object) -> None:
            self.reload_gateway = True

        signal.signal(signal.SIGTERM, on_signal)
        signal.signal(signal.SIGINT, on_signal)
        signal.signal(signal.SIGHUP, on_hup)
        try:
            self.start()
            while not self.stopping:
                self.supervise_once()
                time.sleep(0.2)
            return 0
        except Exception as exc:
            log.error("mesh failed: %s", exc)
            self.state = "failed"
            with contextlib.suppress(OSError):
                self.write_state()
            return 1
        finally:
            self.stop()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="Run the Tradecore mesh supervisor.")
    ap.add_argument("--config-json", required=True)
    ns = ap.parse_args(argv)
    logging.basicConfig(
        level=logging.INFO,
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    cfg = MeshConfig.from_json(ns.config_json)
    Path(cfg.data_path).mkdir(parents=True, exist_ok=True)
    return Supervisor(cfg).run()


if __name__ == "__main__":
    raise SystemExit(main())
