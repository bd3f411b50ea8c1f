"""`make setup-dev` installs editable: tests, the mesh's child processes and a developer's edits
all see the checkout's code (no installed copy that goes stale until the next install)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import tradecore
import tradecore_gateway
import tradecore_services

from tests.conftest import REPO

HINT = "installed as a copy: run `make setup-dev` (an editable install) before the tests"


def test_packages_are_imported_from_the_checkout() -> None:
    for pkg, source in (
        (tradecore_services, REPO / "services"),
        (tradecore_gateway, REPO / "gateway"),
        (tradecore, REPO / "python" / "tradecore"),
    ):
        assert pkg.__file__ is not None
        assert Path(pkg.__file__).resolve().parent == source, HINT


def test_a_child_process_imports_the_checkout(tmp_path: Path) -> None:
    # As the supervisor runs a service: `python -m <module>` from the data directory.
    code = (
        "import tradecore_services.pricing.main as m, tradecore_gateway.generate as g; "
        "print(m.__file__); print(g.__file__)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, check=True
    ).stdout.split()
    assert [Path(p).resolve() for p in out] == [
        REPO / "services" / "pricing" / "main.py",
        REPO / "gateway" / "generate.py",
    ], HINT
