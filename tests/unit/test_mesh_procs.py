"""Process identity and die-with-parent, the pieces the mesh supervisor and CLI build on."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from tradecore_services.mesh import die_with_parent
from tradecore_services.mesh.config import MeshConfig
from tradecore_services.mesh.procs import running, start_time, stop

linux = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="needs /proc and prctl")


def wait_gone(pid: int, started: int | None, timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while running(pid, started) and time.monotonic() < deadline:
        time.sleep(0.02)
    return not running(pid, started)


@linux
def test_a_pid_counts_only_with_its_start_time() -> None:
    proc = subprocess.Popen(["sleep", "30"])
    try:
        started = start_time(proc.pid)
        assert started is not None
        assert running(proc.pid, started)
        assert running(proc.pid)
        # Another start time under the same pid is another process (the pid was reused).
        assert not running(proc.pid, started + 1)
    finally:
        proc.kill()
        proc.wait()
    assert not running(proc.pid, started)
    assert start_time(proc.pid) is None


@linux
def test_stop_kills_what_ignores_sigterm() -> None:
    code = (
        "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); "
        "print(1, flush=True); time.sleep(60)"
    )
    with subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE) as proc:
        assert proc.stdout is not None and proc.stdout.readline()
        killed = stop([proc.pid], timeout=0.3)
        assert killed == [proc.pid]
        assert proc.wait(5) == -signal.SIGKILL


@linux
def test_child_dies_with_its_parent(tmp_path: Path) -> None:
    """A parent started through die_with_parent's wrapper is SIGKILLed: the child it started
    gets SIGTERM and exits, although it was never told to stop."""
    pid_file = tmp_path / "child.pid"
    parent = textwrap.dedent(
        f"""
        import os, subprocess, sys, time
        child = subprocess.Popen([sys.executable, "-I", "-S", {die_with_parent.__file__!r},
                                  str(os.getpid()), "sleep", "60"])
        open({str(pid_file)!r}, "w").write(str(child.pid))
        time.sleep(60)
        """
    )
    proc = subprocess.Popen([sys.executable, "-c", parent])
    try:
        deadline = time.monotonic() + 10
        while not pid_file.exists() or not pid_file.read_text():
            assert time.monotonic() < deadline
            time.sleep(0.02)
        child = int(pid_file.read_text())
        # Wait until the wrapper has exec'd sleep (same pid), so the signal is armed.
        while "sleep" not in Path(f"/proc/{child}/cmdline").read_bytes().decode(errors="replace"):
            assert time.monotonic() < deadline
            time.sleep(0.02)
        started = start_time(child)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        assert wait_gone(child, started)
    finally:
        if proc.poll() is None:
            proc.kill()


@linux
def test_wrapper_refuses_to_start_when_its_parent_is_gone() -> None:
    r = subprocess.run(
        # The wrapper's parent is this process; it is told to expect another one.
        [sys.executable, "-I", "-S", die_with_parent.__file__, str(os.getpid() + 1), "sleep", "60"],
        capture_output=True,
        text=True,
        timeout=10,
    )
    assert r.returncode == 1 and "is gone; not starting sleep" in r.stderr


def test_data_dir_errors_name_the_directory(tmp_path: Path) -> None:
    in_the_way = tmp_path / "file"
    in_the_way.write_text("x")
    with pytest.raises(ValueError, match=f"data directory {in_the_way} is not a directory"):
        MeshConfig(data_dir=str(in_the_way)).prepare_data_dir()
    with pytest.raises(ValueError, match=f"data directory {in_the_way} is not a directory"):
        MeshConfig(data_dir=str(in_the_way)).data_dir_exists()
    with pytest.raises(ValueError, match="Not a directory"):
        MeshConfig(data_dir=str(in_the_way / "sub")).prepare_data_dir()
    assert not MeshConfig(data_dir=str(tmp_path / "none")).data_dir_exists()
    MeshConfig(data_dir=str(tmp_path / "new" / "data")).prepare_data_dir()
    assert (tmp_path / "new" / "data" / "logs").is_dir()
    assert MeshConfig(data_dir=str(tmp_path / "new" / "data")).data_dir_exists()


def test_a_child_output_log_over_its_limit_is_moved_aside_at_restart(tmp_path: Path) -> None:
    from tradecore_services.mesh import supervisor

    log = tmp_path / "pricing.log"
    log.write_bytes(b"x" * (supervisor.OUTPUT_LOG_MAX_BYTES + 1))
    with supervisor.open_output_log(log) as f:
        f.write(b"after\n")
    assert log.read_bytes() == b"after\n"
    assert (tmp_path / "pricing.log.1").stat().st_size == supervisor.OUTPUT_LOG_MAX_BYTES + 1
    with supervisor.open_output_log(log) as f:  # under the limit: appended to
        f.write(b"again\n")
    assert log.read_bytes() == b"after\nagain\n"
