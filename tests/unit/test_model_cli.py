"""``tradecore model``: every subcommand against a ModelService served in process (on a
thread of its own, since the CLI's gRPC calls block), and its exit statuses."""

from __future__ import annotations

import asyncio
import io
import json
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from tradecore.inference.registry import git_commit
from tradecore_services.mesh.cli import main as cli_main

from tests.conftest import free_port
from tests.unit.test_models_servicer import Service, serve


@pytest.fixture
def service(tmp_path: Path) -> Iterator[Service]:
    ready: list[Service] = []
    started, stop = threading.Event(), threading.Event()

    async def run() -> None:
        async with serve(tmp_path / "service") as svc:
            ready.append(svc)
            started.set()
            while not stop.is_set():
                await asyncio.sleep(0.02)

    thread = threading.Thread(target=asyncio.run, args=(run(),), daemon=True)
    thread.start()
    assert started.wait(60)
    yield ready[0]
    stop.set()
    thread.join(60)


def cli(capsys: pytest.CaptureFixture[str], target: str, *args: str) -> tuple[int, Any]:
    code = cli_main(["model", "--target", target, *args])
    out, err = capsys.readouterr()
    return code, (json.loads(out) if code == 0 else err)


def test_every_subcommand(
    service: Service, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    t = service.target
    model = tmp_path / "pricer.onnx"
    model.write_bytes(b"onnx bytes")
    ref = tmp_path / "ref.npz"
    buf = io.BytesIO()
    np.savez(buf, x=np.zeros((5, 2), np.float32))
    ref.write_bytes(buf.getvalue())
    code, v1 = cli(
        capsys, t, "register", "pricer", str(model), "--metric", "rmse=0.2",
        "--param", "lr=0.01", "--param", "layers=3", "--param", "act=relu",
        "--seed", "11", "--data-start", "2024-01-01", "--data-end", "2024-03-31",
        "--reference", str(ref), "--config", "max_batch_size=8", "--by", "alice",
        "--description", "base",
    )  # fmt: skip
    assert code == 0, v1
    assert (v1["version"], v1["created_by"], v1["metrics"]) == (1, "alice", {"rmse": 0.2})
    assert v1["lineage"]["params"] == {"lr": 0.01, "layers": 3, "act": "relu"}
    assert v1["lineage"]["seed"] == "11" and v1["lineage"]["code_version"] == git_commit()
    assert v1["reference_sha256"] and v1["config"] == {"max_batch_size": "8"}
    model.write_bytes(b"onnx bytes 2")
    code, v2 = cli(capsys, t, "register", "pricer", str(model), "--parent", "1")
    assert code == 0 and v2["version"] == 2 and v2["lineage"]["parent_version"] == 1
    code, m = cli(capsys, t, "alias", "pricer", "champion", "1", "--by", "a", "--reason", "go")
    assert code == 0 and m["aliases"] == {"champion": 1}
    cli(capsys, t, "alias", "pricer", "champion", "2", "--by", "b")
    code, m = cli(capsys, t, "rollback", "pricer", "champion", "--by", "c")
    assert code == 0 and m["default_version"] == 1
    assert [e["actor"] for e in m["alias_history"]] == ["a", "b", "c"]
    code, m = cli(capsys, t, "show", "pricer")
    assert code == 0 and [v["version"] for v in m["versions"]] == [1, 2]
    code, listed = cli(capsys, t, "list")
    assert code == 0 and listed["models"][0]["name"] == "pricer"
    code, p = cli(
        capsys, t, "policy", "pricer", "canary", "--challenger", "2", "--percent", "10",
        "--by", "d", "--reason", "try",
    )  # fmt: skip
    assert code == 0 and (p["kind"], p["percent"], p["actor"]) == ("CANARY", 10.0, "d")
    code, p = cli(capsys, t, "policy", "pricer")
    assert code == 0 and p["kind"] == "CANARY" and p["reason"] == "try"
    for i in range(100):
        service.router.route("pricer", f"r{i}")
    code, report = cli(capsys, t, "report", "pricer")
    assert code == 0 and sum(int(a["requests"]) for a in report["arms"]) == 100
    code, m = cli(capsys, t, "alias", "pricer", "champion", "--remove", "--by", "e")
    assert code == 0 and m["aliases"] == {}


def test_exit_statuses(
    service: Service, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    t = service.target
    code, err = cli(capsys, t, "show", "nope")
    assert code == 1 and "NOT_FOUND" in err
    code, err = cli(capsys, t, "show", "bad name")
    assert code == 2 and "name:" in err
    model = tmp_path / "m.onnx"
    model.write_bytes(b"x")
    assert cli(capsys, t, "register", "m", str(model))[0] == 0
    code, err = cli(capsys, t, "policy", "m", "ab", "--challenger", "1", "--percent", "200")
    assert code == 2 and "percent:" in err
    code, err = cli(capsys, t, "alias", "m", "champion")
    assert code == 2 and "VERSION or --remove" in err
    code, err = cli(capsys, t, "register", "m", str(tmp_path / "missing.onnx"))
    assert code == 2 and "missing.onnx" in err
    code, err = cli(capsys, t, "register", "m", str(model), "--metric", "rmse=low")
    assert code == 2 and "metric rmse" in err
    code, err = cli(capsys, f"127.0.0.1:{free_port()}", "list")
    assert code == 3 and "UNAVAILABLE" in err
    code = cli_main(["model", "--data-dir", str(tmp_path / "no-mesh"), "list"])
    assert code == 3 and "not running" in capsys.readouterr().err
