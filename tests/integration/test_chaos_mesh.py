"""``tradecore chaos`` on a mesh of its own, short: 20 s of mixed load through the gateway while
the execution service and nats-server are SIGKILLed in turn. Nothing acknowledged may be lost
or doubled (orders, fills, position, ticks), and each killed component is healthy again."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.conftest import running_mesh
from tests.mesh import Mesh

pytestmark = [pytest.mark.integration, pytest.mark.timeout(240)]


@pytest.fixture(scope="module")
def chaos_mesh(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Mesh]:
    with running_mesh(Path(tmp_path_factory.mktemp("chaos-mesh"))) as m:
        yield m


def test_short_chaos_run_loses_and_doubles_nothing(chaos_mesh: Mesh, tmp_path: Path) -> None:
    out = tmp_path / "chaos.json"
    proc = chaos_mesh.run(
        "chaos",
        "--duration", "20", "--rate", "20", "--kill", "execution,nats", "--out", str(out),
        timeout=200,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout + proc.stderr
    result = json.loads(out.read_text())
    assert result["ok"] and not any(result["problems"].values()), result["problems"]
    assert [k["component"] for k in result["kills"]] == ["execution", "nats"]
    for k in result["kills"]:
        assert k["healthy_after_s"] is not None and k["new_pid"] != k["pid"], k
    # the load ran and the books had something in them
    assert (
        result["orders"]["answered"] > 10
        and result["orders"]["listed"] == result["orders"]["answered"]
    )
    assert result["fills"]["in_stream"] > 0
    assert all(s["ok"] > 0 for s in result["calls"].values()), result["calls"]
    assert any(f["state"] == "DONE" and f["stored"] == f["total"] for f in result["ticks"]["feeds"])
    assert "OK: nothing acknowledged lost or doubled" in proc.stdout


def test_a_component_that_does_not_exist_is_refused(chaos_mesh: Mesh) -> None:
    proc = chaos_mesh.run("chaos", "--kill", "nosuch", timeout=60)
    assert proc.returncode == 2 and "no component nosuch" in proc.stderr, proc.stderr
