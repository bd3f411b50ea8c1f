"""The restore drill: orders through a running mesh, `tradecore down`, `tradecore backup`, the
data directory lost, `tradecore restore` into a new one, `tradecore up` on it: every acknowledged
order, fill and position is back. Prints the measured recovery time (restore + start until every
component is healthy) and the recovery point (nothing acknowledged before the down is lost)."""

from __future__ import annotations

import gzip
import io
import shutil
import subprocess
import sys
import tarfile
import time
from pathlib import Path
from typing import Any

import pytest

from tests.integration.test_execution_mesh import http, publish_quote
from tests.mesh import Mesh

pytestmark = pytest.mark.e2e

TRADECORE = str(Path(sys.executable).parent / "tradecore")


def tradecore(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([TRADECORE, *args], capture_output=True, text=True, timeout=300)


def order_body(coid: str, quantity: int) -> dict[str, Any]:
    return {
        "account": "DR1", "client_order_id": coid, "symbol": "AAPL", "side": "BUY",
        "quantity": quantity, "type": "LIMIT", "limit_price": 191.0, "time_in_force": "IOC",
    }  # fmt: skip


def place_orders(m: Mesh, n: int) -> list[dict[str, Any]]:
    """``n`` filled orders of 10, 11, ... (distinct: the duplicate-order control would deny a
    repeat within its window)."""
    deadline = time.monotonic() + 60
    out = []
    for i in range(n):
        attempt = 0
        while True:  # until the quote has reached the price collar
            publish_quote(m, "AAPL", 190.0, 191.0, size=1000)
            status, got = http(
                m, "POST", "/v1/execution/orders", order_body(f"dr-{i}-{attempt}", 10 + i)
            )
            if got.get("reason_code") != "NO_REFERENCE_PRICE":
                break
            assert time.monotonic() < deadline, got
            attempt += 1
            time.sleep(0.1)
        assert status == 200 and got["status"] == "FILLED", got
        out.append(got)
    return out


def test_backup_restore_drill(tmp_path: Path) -> None:
    first = Mesh.with_free_ports(tmp_path / "site-a")
    up = first.run("up")
    assert up.returncode == 0, up.stdout + up.stderr
    try:
        placed = place_orders(first, 3)
        # a backup while the mesh runs is refused (files still being written)
        live = tradecore("backup", "--data-dir", str(first.data_dir), "--out", str(tmp_path / "x"))
        assert live.returncode == 1 and "tradecore down" in live.stderr
    finally:
        down = first.run("down")
        assert down.returncode == 0, down.stdout + down.stderr
    archive = tmp_path / "backup.tar.gz"
    made = tradecore("backup", "--data-dir", str(first.data_dir), "--out", str(archive))
    assert made.returncode == 0, made.stderr
    assert archive.stat().st_mode & 0o777 == 0o600
    shutil.rmtree(first.data_dir)  # the site is lost

    # a damaged archive is refused before anything is written
    damaged = tmp_path / "damaged.tar.gz"
    damaged.write_bytes(corrupt(archive.read_bytes()))
    bad = tradecore("restore", str(damaged), "--data-dir", str(tmp_path / "never"))
    assert bad.returncode == 1 and "SHA-256" in bad.stderr, bad.stderr
    assert not (tmp_path / "never").exists()

    second = Mesh.with_free_ports(tmp_path / "site-b")
    t0 = time.perf_counter()
    restored = tradecore("restore", str(archive), "--data-dir", str(second.data_dir))
    assert restored.returncode == 0, restored.stderr
    t_restore = time.perf_counter() - t0
    again = tradecore("restore", str(archive), "--data-dir", str(second.data_dir))
    assert again.returncode == 1 and "not empty" in again.stderr
    up = second.run("up")  # returns once every component is healthy
    rto = time.perf_counter() - t0
    assert up.returncode == 0, up.stdout + up.stderr
    try:
        deadline = time.monotonic() + 60
        for before in placed:
            while True:
                status, got = http(second, "GET", f"/v1/execution/orders/{before['order_id']}")
                if status == 200:
                    break
                assert time.monotonic() < deadline, got
                time.sleep(0.2)
            for key in ("status", "filled_quantity", "average_price", "client_order_id"):
                assert got[key] == before[key], (key, got, before)
        status, pos = http(second, "GET", "/v1/execution/accounts/DR1/positions")
        assert status == 200
        ((p),) = pos["positions"]
        assert (p["symbol"], int(p["quantity"])) == ("AAPL", 10 + 11 + 12)
        # resubmitting an order already placed returns it, never a second one
        first_order = order_body(placed[0]["client_order_id"], 10)
        status, dup = http(second, "POST", "/v1/execution/orders", first_order)
        assert status == 200 and dup["order_id"] == placed[0]["order_id"]
    finally:
        down = second.run("down")
        assert down.returncode == 0, down.stdout + down.stderr
    print(
        f"\nrestore drill: restore {t_restore:.2f} s, recovery time (restore + up, all healthy) "
        f"{rto:.2f} s, recovery point: the backup (0 acknowledged orders lost of {len(placed)})"
    )


def corrupt(data: bytes) -> bytes:
    """The archive with one byte of its last data member changed (still a valid tar.gz)."""
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as src:
        members = [(m, src.extractfile(m).read() if m.isfile() else None) for m in src]  # type: ignore[union-attr]
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w") as dst:
        last = max(i for i, (m, b) in enumerate(members) if b)
        for i, (m, b) in enumerate(members):
            if i == last and b:
                b = bytes([b[0] ^ 0xFF]) + b[1:]
            dst.addfile(m, io.BytesIO(b) if b is not None else None)
    return gzip.compress(out.getvalue())
