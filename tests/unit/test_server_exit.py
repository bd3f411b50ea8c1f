"""A service process whose shutdown hangs ends itself after its grace period plus
STOP_BUDGET_S, with every thread's stack in its log (no orphan keeps its ports)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path

from tradecore_services.common.server import EXIT_STUCK, STOP_BUDGET_S

SERVICE = textwrap.dedent(
    """
    import asyncio, sys, threading, time
    from tradecore_services.common.server import ServiceApp, main
    from tradecore_services.common.settings import ServiceSettings

    def stuck_forever() -> None:
        threading.Event().wait()

    async def hang() -> None:
        await asyncio.get_running_loop().run_in_executor(None, stuck_forever)

    def build() -> ServiceApp:
        settings = ServiceSettings.from_env("stuck", port=int(sys.argv[1]), metrics_port=0)
        return ServiceApp(settings, lambda server: None, [], on_stop=[hang])

    main(build)
    """
)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait_serving(log: Path, proc: subprocess.Popen[bytes], timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if log.exists() and "serving on" in log.read_text():
            return
        assert proc.poll() is None, log.read_text() if log.exists() else "exited"
        time.sleep(0.05)
    raise AssertionError("the service never served")


def test_a_hung_shutdown_ends_the_process_with_its_stacks_logged(tmp_path: Path) -> None:
    script = tmp_path / "stuck.py"
    script.write_text(SERVICE)
    log = tmp_path / "stuck.log"
    grace = 0.5
    env = {
        **os.environ,
        "TRADECORE_GRACE_SECONDS": str(grace),
        "TRADECORE_LOG_FILE": str(log),
        "TRADECORE_DATA_DIR": str(tmp_path),
    }
    stderr = tmp_path / "stderr"
    with stderr.open("wb") as err:
        proc = subprocess.Popen(
            [sys.executable, str(script), str(_free_port())],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=err,
        )
    try:
        _wait_serving(log, proc)
        started = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        rc = proc.wait(timeout=grace + STOP_BUDGET_S + 20)
        took = time.monotonic() - started
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert rc == EXIT_STUCK
    assert took >= grace + STOP_BUDGET_S - 0.5
    text = log.read_text()
    assert "still shutting down" in text
    assert "stuck_forever" in text  # the stuck thread's stack, in the service's own log
    assert "stuck_forever" in stderr.read_text()


def test_a_clean_shutdown_exits_zero_before_the_watchdog(tmp_path: Path) -> None:
    script = tmp_path / "clean.py"
    script.write_text(SERVICE.replace("on_stop=[hang]", "on_stop=[]"))
    log = tmp_path / "clean.log"
    env = {**os.environ, "TRADECORE_GRACE_SECONDS": "0.5", "TRADECORE_LOG_FILE": str(log)}
    proc = subprocess.Popen(
        [sys.executable, str(script), str(_free_port())],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        _wait_serving(log, proc)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=STOP_BUDGET_S) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert "still shutting down" not in log.read_text()
