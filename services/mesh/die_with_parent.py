"""Exec a program that gets SIGTERM when the process that started it dies.

    python -I -S die_with_parent.py PARENT_PID PROGRAM [ARG...]

The supervisor starts every child through this script, so that a supervisor that is killed
(even with SIGKILL) takes its children with it instead of leaving them serving on the mesh's
ports. On Linux it sets ``PR_SET_PDEATHSIG`` (kept across ``execve``) and then replaces itself
with PROGRAM, so PROGRAM keeps this pid. If PARENT_PID is already gone by the time the signal is
armed, it exits instead of starting PROGRAM. Elsewhere it only execs PROGRAM (``tradecore up``
and ``down`` then stop what a dead supervisor left).

It imports only the standard library, so it runs with ``-I -S`` and costs a few milliseconds.
"""

from __future__ import annotations

import ctypes
import os
import signal
import sys

PR_SET_PDEATHSIG = 1


def arm(parent: int) -> None:
    if not sys.platform.startswith("linux"):
        return
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_PDEATHSIG, int(signal.SIGTERM), 0, 0, 0) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"prctl(PR_SET_PDEATHSIG): {os.strerror(err)}")
    # The parent may have died between fork and prctl: then no signal will ever come.
    if os.getppid() != parent:
        raise SystemExit(f"die_with_parent: parent {parent} is gone; not starting {sys.argv[2]}")


def main(argv: list[str]) -> None:
    if len(argv) < 2:
        raise SystemExit("usage: die_with_parent.py PARENT_PID PROGRAM [ARG...]")
    arm(int(argv[0]))
    os.execvp(argv[1], argv[1:])


if __name__ == "__main__":
    main(sys.argv[1:])
