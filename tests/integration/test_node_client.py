"""A client in another language: Node.js loads proto/ and calls Price through Envoy."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import google.api
import pytest

from tests.integration.test_pricing_mesh import CONTRACTS, check_results
from tests.mesh import Mesh

pytestmark = pytest.mark.integration
NODE_DIR = Path(__file__).parent / "node"
REPO = Path(__file__).resolve().parents[2]


def googleapis_dir() -> str:
    for entry in google.api.__path__:
        root = Path(entry).parent.parent
        if (root / "google" / "api" / "annotations.proto").exists():
            return str(root)
    raise RuntimeError("googleapis protos not found")


@pytest.fixture(scope="module")
def node() -> str:
    exe = shutil.which("node")
    npm = shutil.which("npm")
    if not exe or not npm:
        pytest.fail("node and npm are required for the other-language client test")
    if not (NODE_DIR / "node_modules" / "@grpc" / "grpc-js").exists():
        subprocess.run(
            [npm, "install", "--no-audit", "--no-fund", "--silent"],
            cwd=NODE_DIR,
            check=True,
            timeout=300,
        )
    return exe


def run_node(
    node: str,
    mesh: Mesh,
    contracts: list[dict[str, object]],
    method: str = "Price",
    request: dict[str, object] | None = None,
) -> subprocess.CompletedProcess[str]:
    body = {"contracts": contracts} if request is None else request
    env = dict(
        os.environ,
        PRICE_REQUEST=json.dumps(body),
        PRICE_METHOD=method,
        AUTHORIZATION=f"Bearer {mesh.token()}",
    )
    return subprocess.run(
        [node, str(NODE_DIR / "price.js"), mesh.gateway, str(REPO / "proto"), googleapis_dir()],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
    )


def test_node_client_prices_through_gateway(node: str, mesh: Mesh) -> None:
    done = run_node(node, mesh, CONTRACTS)
    assert done.returncode == 0, done.stdout + done.stderr
    check_results(json.loads(done.stdout)["results"])


def test_node_client_gets_invalid_argument(node: str, mesh: Mesh) -> None:
    done = run_node(node, mesh, [dict(CONTRACTS[0], volatility=-0.3)])
    assert done.returncode == 1
    err = json.loads(done.stdout)
    assert err["code"] == 3 and "contracts[0].volatility" in err["details"]


def test_node_client_implied_vol(node: str, mesh: Mesh) -> None:
    from tradecore import pricing

    p = float(pricing.european(100.0, 105.0, 0.5, 0.03, 0.01, 0.25, "call", "none")["price"])
    row = dict(spot=100.0, strike=105.0, expiry_years=0.5, rate=0.03, dividend_yield=0.01)
    options = [dict(row, price=p, option_type="CALL"), dict(row, price=-1.0, option_type="PUT")]
    done = run_node(node, mesh, [], "ImpliedVol", {"options": options})
    assert done.returncode == 0, done.stdout + done.stderr
    res = json.loads(done.stdout)
    assert [r["status"] for r in res["results"]] == ["IV_OK", "IV_NON_POSITIVE"]
    assert abs(res["results"][0]["volatility"] - 0.25) < 1e-12
    assert res["counts"]["ok"] == 1 and res["counts"]["non_positive"] == 1
