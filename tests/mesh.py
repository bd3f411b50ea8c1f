"""Start and stop a real mesh (nats-server, services, Envoy) on free loopback ports."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

from tests.conftest import free_port


def tradecore_cmd() -> list[str]:
    exe = shutil.which("tradecore", path=str(Path(sys.executable).parent))
    return [exe] if exe else [sys.executable, "-m", "tradecore_services.mesh.cli"]


@dataclass
class Mesh:
    data_dir: Path
    gateway_port: int
    admin_port: int
    nats_port: int
    nats_monitor_port: int
    pricing_port: int
    pricing_metrics_port: int
    marketdata_port: int
    marketdata_metrics_port: int
    # Extra environment for the CLI and, through the supervisor, every service.
    env: dict[str, str] = field(default_factory=dict)

    @classmethod
    def with_free_ports(cls, data_dir: Path) -> Mesh:
        ports = set()
        while len(ports) < 8:
            ports.add(free_port())
        g, a, n, nm, p, pm, md, mdm = sorted(ports)
        return cls(data_dir, g, a, n, nm, p, pm, md, mdm)

    def args(self) -> list[str]:
        return [
            "--data-dir",
            str(self.data_dir),
            "--gateway-port",
            str(self.gateway_port),
            "--admin-port",
            str(self.admin_port),
            "--nats-port",
            str(self.nats_port),
            "--nats-monitor-port",
            str(self.nats_monitor_port),
            "--pricing-port",
            str(self.pricing_port),
            "--pricing-metrics-port",
            str(self.pricing_metrics_port),
            "--marketdata-port",
            str(self.marketdata_port),
            "--marketdata-metrics-port",
            str(self.marketdata_metrics_port),
        ]

    def run(
        self, command: str, *extra: str, timeout: float = 90
    ) -> subprocess.CompletedProcess[str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("TRADECORE_")}
        env.update(self.env)
        return subprocess.run(
            [*tradecore_cmd(), command, *self.args(), *extra],
            capture_output=True,
            text=True,
            timeout=timeout,
            env=env,
        )

    @property
    def gateway(self) -> str:
        return f"127.0.0.1:{self.gateway_port}"

    @property
    def pricing(self) -> str:
        return f"127.0.0.1:{self.pricing_port}"

    @property
    def marketdata(self) -> str:
        return f"127.0.0.1:{self.marketdata_port}"

    @property
    def nats_url(self) -> str:
        return f"nats://127.0.0.1:{self.nats_port}"

    def state(self) -> dict[str, object]:
        return dict(json.loads((self.data_dir / "mesh.json").read_text()))
