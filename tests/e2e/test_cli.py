"""`tradecore up` / `status` / `down` as a user runs them."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import time
import urllib.request
from pathlib import Path

import pytest

from tests.mesh import Mesh

pytestmark = pytest.mark.e2e


def alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(")")[-1].split()[0] != "Z"
    except OSError:
        return False


def processes_mentioning(text: str) -> list[int]:
    out = subprocess.run(["ps", "-eo", "pid=,args="], capture_output=True, text=True).stdout
    return [
        int(line.split(None, 1)[0])
        for line in out.splitlines()
        if text in line and "pytest" not in line
    ]


def all_pids(m: Mesh) -> list[int]:
    state = m.state()
    comps = state["components"]
    assert isinstance(comps, dict)
    return [int(state["supervisor_pid"]), *(int(c["pid"]) for c in comps.values() if c["pid"])]


def test_up_status_down_leaves_nothing(tmp_path: Path) -> None:
    m = Mesh.with_free_ports(tmp_path / "data")
    t0 = time.monotonic()
    up = m.run("up")
    elapsed = time.monotonic() - t0
    assert up.returncode == 0, up.stdout + up.stderr
    assert elapsed < 15, f"mesh took {elapsed:.1f}s to become healthy"
    assert f"127.0.0.1:{m.gateway_port}" in up.stdout
    pids = all_pids(m)
    assert all(alive(p) for p in pids)
    st = m.run("status")
    assert st.returncode == 0, st.stdout + st.stderr
    for name in ("nats", "pricing", "gateway"):
        assert any(line.split()[:2] == [name, "healthy"] for line in st.stdout.splitlines()), (
            st.stdout
        )
    # A second `up` on the same data dir is refused while the mesh runs.
    again = m.run("up")
    assert again.returncode == 1 and "already running" in again.stderr
    # curl through the gateway works
    body = json.dumps(
        {
            "contracts": [
                {
                    "spot": 100,
                    "strike": 100,
                    "expiry_years": 1,
                    "volatility": 0.2,
                    "option_type": "CALL",
                }
            ]
        }
    ).encode()
    req = urllib.request.Request(f"http://{m.gateway}/v1/pricing/price", data=body, method="POST")
    with urllib.request.urlopen(req, timeout=10) as r:
        assert json.loads(r.read())["results"][0]["price"] == pytest.approx(
            7.965567455405804, rel=1e-12
        )
    down = m.run("down")
    assert down.returncode == 0, down.stdout + down.stderr
    deadline = time.monotonic() + 5
    while any(alive(p) for p in pids) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not [p for p in pids if alive(p)]
    assert processes_mentioning(str(m.data_dir)) == []
    st = m.run("status")
    assert st.returncode != 0 and "not running" in st.stdout
    assert m.run("down").returncode == 0  # idempotent


def test_dead_child_is_restarted_and_down_cleans_up(tmp_path: Path) -> None:
    m = Mesh.with_free_ports(tmp_path / "data")
    assert m.run("up").returncode == 0
    try:
        comps = m.state()["components"]
        assert isinstance(comps, dict)
        old = int(comps["pricing"]["pid"])
        os.kill(old, signal.SIGKILL)
        deadline = time.monotonic() + 15
        new = old
        while time.monotonic() < deadline:
            comps = m.state()["components"]
            assert isinstance(comps, dict)
            new = int(comps["pricing"]["pid"] or old)
            if new != old and m.run("status").returncode == 0:
                break
            time.sleep(0.2)
        assert new != old
        assert comps["pricing"]["restarts"] == 1
        log = (m.data_dir / "logs" / "supervisor.log").read_text()
        assert f"pricing (pid {old}) exited with code -9; restarting" in log
        # Kill the gateway too; then `down` must still leave nothing behind.
        pids = all_pids(m)
        os.kill(int(comps["gateway"]["pid"]), signal.SIGKILL)
        time.sleep(0.1)
        pids += all_pids(m)
    finally:
        assert m.run("down").returncode == 0
    time.sleep(0.3)
    assert not [p for p in pids if alive(p)]
    assert processes_mentioning(str(m.data_dir)) == []


def test_port_in_use_is_a_clear_error(tmp_path: Path) -> None:
    m = Mesh.with_free_ports(tmp_path / "data")
    with socket.socket() as s:
        s.bind(("127.0.0.1", m.gateway_port))
        s.listen()
        up = m.run("up")
    assert up.returncode == 1
    assert f"port {m.gateway_port} (gateway) is already in use" in up.stderr
    assert processes_mentioning(str(m.data_dir)) == []


def test_supervisor_killed_hard_down_still_cleans(tmp_path: Path) -> None:
    m = Mesh.with_free_ports(tmp_path / "data")
    assert m.run("up").returncode == 0
    pids = all_pids(m)
    os.kill(pids[0], signal.SIGKILL)  # the supervisor dies without stopping its children
    time.sleep(0.2)
    assert m.run("status").returncode != 0
    assert m.run("down").returncode == 0
    time.sleep(0.3)
    assert not [p for p in pids if alive(p)]
    assert processes_mentioning(str(m.data_dir)) == []


def test_foreground_stops_everything_on_ctrl_c(tmp_path: Path) -> None:
    m = Mesh.with_free_ports(tmp_path / "data")
    env = {k: v for k, v in os.environ.items() if not k.startswith("TRADECORE_")}
    from tests.mesh import tradecore_cmd

    proc = subprocess.Popen(
        [*tradecore_cmd(), "up", "--foreground", *m.args()],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if (m.data_dir / "mesh.json").exists() and m.state().get("state") == "ready":
                break
            time.sleep(0.1)
        assert m.state().get("state") == "ready"
        pids = all_pids(m)[1:]
        os.killpg(proc.pid, signal.SIGINT)  # Ctrl-C reaches the whole foreground group
        proc.wait(30)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert proc.returncode == 0
    assert not [p for p in pids if alive(p)]
    assert processes_mentioning(str(m.data_dir)) == []
