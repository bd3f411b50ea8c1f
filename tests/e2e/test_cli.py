"""`tradecore up` / `status` / `down` as a user runs them."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import time
import urllib.request
from pathlib import Path

import pytest
from tradecore_services.registry import SERVICES

from tests.mesh import Mesh, tradecore_cmd

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
    # curl through the gateway works, with a token from `tradecore token`
    minted = subprocess.run(
        [*tradecore_cmd(), "token", "--role", "viewer", "--data-dir", str(m.data_dir)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert minted.returncode == 0, minted.stderr
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
    req = urllib.request.Request(
        f"http://{m.gateway}/v1/pricing/price",
        data=body,
        method="POST",
        headers={"authorization": f"Bearer {minted.stdout.strip()}"},
    )
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


def child_pids(m: Mesh) -> dict[str, int]:
    comps = m.state()["components"]
    assert isinstance(comps, dict)
    return {name: int(c["pid"]) for name, c in comps.items() if c["pid"]}


def wait_gone(pids: list[int], timeout: float) -> list[str]:
    """The processes of ``pids`` still alive after ``timeout`` s, described (pid, state, argv)."""
    deadline = time.monotonic() + timeout
    while any(alive(p) for p in pids) and time.monotonic() < deadline:
        time.sleep(0.05)
    return [describe(p) for p in pids if alive(p)]


def describe(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/stat") as f:
            state = f.read().split(")")[-1].split()[0]
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            argv = f.read().replace(b"\0", b" ").decode(errors="replace")[:200]
    except OSError:
        return f"{pid} (gone)"
    return f"{pid} {state} {argv}"


def test_supervisor_killed_hard_takes_its_children_and_up_starts_cleanly(tmp_path: Path) -> None:
    m = Mesh.with_free_ports(tmp_path / "data")
    assert m.run("up").returncode == 0
    sup = int(m.state()["supervisor_pid"])
    children = child_pids(m)
    assert set(children) == {"nats", "access", "gateway", *(s.name for s in SERVICES)}
    try:
        os.kill(sup, signal.SIGKILL)  # the supervisor dies without stopping its children
        # SIGTERM from PR_SET_PDEATHSIG: each drains (grace 10 s) and stops its stores first.
        assert wait_gone(list(children.values()), 20) == []
        st = m.run("status")
        assert st.returncode != 0 and "not running" in st.stdout, st.stdout + st.stderr
        # The same ports are free again: a second `up` starts a healthy mesh.
        up = m.run("up")
        assert up.returncode == 0, up.stdout + up.stderr
        assert m.run("status").returncode == 0
        pids = all_pids(m)
    finally:
        assert m.run("down").returncode == 0
    assert wait_gone(pids, 5) == []
    assert processes_mentioning(str(m.data_dir)) == []


def test_orphans_are_reported_and_adopted_by_the_next_up(tmp_path: Path) -> None:
    """A child that outlives its supervisor (here: Envoy, stopped with SIGSTOP so that the
    signal it gets when the supervisor dies stays pending) is named by `status` and
    stopped by the next `up`, which then starts on the same ports."""
    m = Mesh.with_free_ports(tmp_path / "data")
    assert m.run("up").returncode == 0
    sup = int(m.state()["supervisor_pid"])
    children = child_pids(m)
    gateway = children["gateway"]
    pids = [sup, *children.values()]
    try:
        os.kill(gateway, signal.SIGSTOP)
        os.kill(sup, signal.SIGKILL)
        # (The services drain on their SIGTERM, for up to TRADECORE_GRACE_SECONDS while the
        # stopped Envoy holds its connections open; they may still be listed below too.)
        time.sleep(0.5)
        assert alive(gateway)
        st = m.run("status")
        assert st.returncode == 3, st.stdout + st.stderr
        assert "not running" in st.stdout
        assert f"gateway (pid {gateway}, ports {m.gateway_port}, {m.admin_port})" in st.stdout
        assert "tradecore down" in st.stdout
        up = m.run("up")
        assert up.returncode == 0, up.stdout + up.stderr
        assert f"gateway (pid {gateway}, ports" in up.stdout
        assert not alive(gateway)
        assert m.run("status").returncode == 0
        pids += all_pids(m)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.kill(gateway, signal.SIGCONT)
        assert m.run("down").returncode == 0
    assert wait_gone(pids, 5) == []
    assert processes_mentioning(str(m.data_dir)) == []


def test_down_stops_orphans_of_a_dead_supervisor(tmp_path: Path) -> None:
    m = Mesh.with_free_ports(tmp_path / "data")
    assert m.run("up").returncode == 0
    sup = int(m.state()["supervisor_pid"])
    children = child_pids(m)
    os.kill(children["nats"], signal.SIGSTOP)
    os.kill(sup, signal.SIGKILL)
    try:
        time.sleep(0.5)
        assert alive(children["nats"])
    finally:
        down = m.run("down")
    assert down.returncode == 0, down.stdout + down.stderr
    assert wait_gone([sup, *children.values()], 5) == []
    assert processes_mentioning(str(m.data_dir)) == []
    assert not (m.data_dir / "mesh.json").exists()


def test_restarting_child_is_reported(tmp_path: Path) -> None:
    """While a child cannot come back (its port is taken) `status` says it is restarting and
    why; once the port is free it is back within the backoff."""
    m = Mesh.with_free_ports(tmp_path / "data")
    assert m.run("up").returncode == 0
    try:
        pricing = child_pids(m)["pricing"]
        supervisor = int(m.state()["supervisor_pid"])
        with socket.socket() as s:
            # The supervisor is paused until the port is taken, so that its restart cannot
            # win the race for the port on a loaded machine.
            os.kill(supervisor, signal.SIGSTOP)
            try:
                os.kill(pricing, signal.SIGKILL)
                assert wait_gone([pricing], 5) == []
                # SO_REUSEADDR (not SO_REUSEPORT): the restarted service cannot share the port.
                s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                bind_deadline = time.monotonic() + 15
                while True:  # the dead service's sockets may hold the port a moment longer
                    try:
                        s.bind(("127.0.0.1", m.pricing_port))
                        break
                    except OSError:
                        if time.monotonic() > bind_deadline:
                            raise
                        time.sleep(0.1)
                s.listen()
            finally:
                os.kill(supervisor, signal.SIGCONT)
            deadline = time.monotonic() + 20
            line = ""
            while time.monotonic() < deadline:
                st = m.run("status")
                assert st.returncode == 1, st.stdout + st.stderr
                line = next(x for x in st.stdout.splitlines() if x.split()[:1] == ["pricing"])
                if "RESTARTING" in line and "exited with code 1" in line:
                    break
                time.sleep(0.2)
            assert "RESTARTING" in line and "exited with code 1" in line, line
            assert "next start in" in line
        deadline = time.monotonic() + 30
        while m.run("status").returncode != 0 and time.monotonic() < deadline:
            time.sleep(0.5)
        assert m.run("status").returncode == 0
        log = (m.data_dir / "logs" / "supervisor.log").read_text()
        assert "pricing healthy again" in log
    finally:
        assert m.run("down").returncode == 0


@pytest.mark.parametrize("command", ["up", "status", "down", "feed"])
def test_unusable_data_dir_is_a_one_line_error(tmp_path: Path, command: str) -> None:
    in_the_way = tmp_path / "file"
    in_the_way.write_text("not a directory")
    cases = [in_the_way, in_the_way / "sub"]
    if command == "up":
        cases.append(Path("/proc/tradecore-test"))
    extra = ["list"] if command == "feed" else []
    for data_dir in cases:
        r = Mesh.with_free_ports(data_dir).run(command, *extra)
        assert "Traceback" not in r.stderr, r.stderr
        assert r.returncode == 2, (data_dir, r.returncode, r.stdout, r.stderr)
        lines = r.stderr.strip().splitlines()
        assert len(lines) == 1, r.stderr
        assert lines[0].startswith(f"tradecore {command}") and str(data_dir) in lines[0], lines


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into a read-only directory")
def test_read_only_data_dir_is_a_one_line_error(tmp_path: Path) -> None:
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o555)
    try:
        r = Mesh.with_free_ports(ro).run("up")
    finally:
        ro.chmod(0o755)
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1 and str(ro) in r.stderr


def test_status_of_a_missing_data_dir_says_not_running(tmp_path: Path) -> None:
    r = Mesh.with_free_ports(tmp_path / "nothing-here").run("status")
    assert r.returncode == 3 and "not running" in r.stdout and r.stderr == ""


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
            proc.wait()
        assert proc.stdout is not None
        proc.stdout.close()
    assert proc.returncode == 0
    assert not [p for p in pids if alive(p)]
    assert processes_mentioning(str(m.data_dir)) == []
