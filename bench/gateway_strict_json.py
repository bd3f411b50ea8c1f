"""Latency the strict-JSON Lua filter adds to a small JSON Price through the gateway.

Starts a mesh, then two more Envoys on free ports in front of the same pricing service: one
with the gateway config as generated (strict JSON) and one without the Lua filter. Calls are
interleaved in rounds over keep-alive HTTP/1.1 connections so both see the same load; prints
p50/p99 of each and their difference.

    .venv/bin/python -m bench.gateway_strict_json [--calls 5000]
"""

from __future__ import annotations

import argparse
import http.client
import json
import subprocess
import tempfile
import time
import urllib.request
from pathlib import Path

import numpy as np
from tradecore_gateway.generate import Upstream, descriptor_path, envoy_config, write_config
from tradecore_services.mesh.components import envoy_path

from tests.conftest import free_port
from tests.mesh import Mesh

BODY = json.dumps(
    {
        "contracts": [
            {
                "spot": 100,
                "strike": 105,
                "expiry_years": 0.5,
                "rate": 0.03,
                "dividend_yield": 0.01,
                "volatility": 0.25,
                "option_type": "CALL",
                "style": "EUROPEAN",
            }
        ]
    }
).encode()


def start_envoy(
    data: Path, name: str, pricing: int, strict: bool
) -> tuple[subprocess.Popen[bytes], int]:
    port, admin = free_port(), free_port()
    cfg = envoy_config(
        descriptor=descriptor_path(),
        upstreams={"tradecore.pricing.v1.PricingService": Upstream("127.0.0.1", pricing)},
        listen_port=port,
        admin_port=admin,
        strict_json=strict,
    )
    path = write_config(data / f"{name}.json", cfg)
    proc = subprocess.Popen(
        [envoy_path(), "-c", str(path), "--log-level", "warn", "--disable-hot-restart",
         "--base-id", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )  # fmt: skip
    deadline = time.monotonic() + 30
    while True:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{admin}/ready", timeout=1) as r:
                if r.status == 200:
                    return proc, port
        except OSError:
            pass
        if time.monotonic() > deadline:
            proc.kill()
            raise RuntimeError(f"envoy {name} did not start")
        time.sleep(0.1)


def call(conn: http.client.HTTPConnection, body: bytes = BODY) -> float:
    t0 = time.perf_counter()
    conn.request("POST", "/v1/pricing/price", body, {"content-type": "application/json"})
    resp = conn.getresponse()
    resp.read()
    elapsed = time.perf_counter() - t0
    if resp.status != 200:
        raise RuntimeError(f"HTTP {resp.status}")
    return elapsed


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--calls", type=int, default=5000)
    ap.add_argument("--round", type=int, default=100)
    ap.add_argument("--big", type=int, default=20_000, help="contracts in the large request")
    ns = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp)
        mesh = Mesh.with_free_ports(data / "mesh")
        up = mesh.run("up")
        assert up.returncode == 0, up.stderr
        procs = []
        try:
            ports = {}
            for name, strict in (("strict", True), ("plain", False)):
                proc, port = start_envoy(data, name, mesh.pricing_port, strict)
                procs.append(proc)
                ports[name] = port
            conns = {k: http.client.HTTPConnection("127.0.0.1", p) for k, p in ports.items()}
            times: dict[str, list[float]] = {k: [] for k in conns}
            for conn in conns.values():  # warm up
                for _ in range(200):
                    call(conn)
            for _ in range(ns.calls // ns.round):
                for name, conn in conns.items():
                    times[name].extend(call(conn) for _ in range(ns.round))
            us = {k: np.array(v) * 1e6 for k, v in times.items()}
            for name, t in us.items():
                print(
                    f"{name:7s} JSON Price via Envoy: p50 {np.percentile(t, 50):7.1f} us  "
                    f"p99 {np.percentile(t, 99):7.1f} us  ({len(t)} calls)"
                )
            for q in (50, 99):
                d = np.percentile(us["strict"], q) - np.percentile(us["plain"], q)
                print(f"Lua filter adds p{q}: {d:+.1f} us")
            # A large body: the filter parses every byte once.
            big = json.loads(BODY)
            big["contracts"] = big["contracts"] * ns.big
            body = json.dumps(big).encode()
            for name, conn in conns.items():
                best = min(call(conn, body) for _ in range(5))
                print(
                    f"{name:7s} {ns.big} contracts ({len(body) / 1e6:.1f} MB): best of 5 "
                    f"{best * 1e3:.1f} ms"
                )
        finally:
            for proc in procs:
                proc.terminate()
                proc.wait(10)
            mesh.run("down")


if __name__ == "__main__":
    main()
