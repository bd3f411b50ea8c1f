"""Processes recorded in ``mesh.json``: is this pid still the process we started, and stopping
the ones a dead supervisor left behind.

A pid alone does not identify a process once it has exited (the kernel reuses pids), so the
supervisor records each process's start time (``/proc/<pid>/stat`` field 22, clock ticks since
boot) next to its pid, and a pid only counts as ours while its start time still matches.
"""

from __future__ import annotations

import contextlib
import os
import signal
import time
from dataclasses import dataclass
from typing import Any


def start_time(pid: int) -> int | None:
    """The start time of a running ``pid`` (None when gone or a zombie)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    # fields[0] is field 3 (state); field 22 (starttime) is fields[19].
    if fields[0] in ("Z", "X"):
        return None
    return int(fields[19])


def running(pid: object, started: object = None) -> bool:
    """Whether ``pid`` runs and, when ``started`` is recorded, is still that same process."""
    if not isinstance(pid, int) or pid <= 0:
        return False
    if os.path.isdir("/proc/self"):
        now = start_time(pid)
        if now is None:
            return False
        return not isinstance(started, int) or now == started
    # Without /proc (not Linux): signal 0 says whether the pid exists.
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def pgid_of(pid: int) -> int | None:
    try:
        return os.getpgid(pid)
    except OSError:
        return None


@dataclass(frozen=True)
class Leftover:
    name: str
    pid: int


def leftovers(state: dict[str, Any]) -> list[Leftover]:
    """The components recorded in ``state`` that still run."""
    out = []
    for name, comp in state.get("components", {}).items():
        if running(comp.get("pid"), comp.get("start")):
            out.append(Leftover(name, int(comp["pid"])))
    return out


def stop(pids: list[int], timeout: float) -> list[int]:
    """SIGTERM (and SIGCONT, so a stopped process sees it) to every pid, SIGKILL to those still
    running after ``timeout`` seconds. Returns the pids that had to be killed."""
    started = {pid: start_time(pid) for pid in pids}
    live = [pid for pid in pids if started[pid] is not None]
    for sig in (signal.SIGTERM, signal.SIGCONT):
        for pid in live:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, sig)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        live = [pid for pid in live if running(pid, started[pid])]
        if not live:
            return []
        time.sleep(0.05)
    for pid in live:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + 5.0
    while any(running(pid, started[pid]) for pid in live) and time.monotonic() < deadline:
        time.sleep(0.05)
    return live
