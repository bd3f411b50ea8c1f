"""Start and stop a real mesh (nats-server, services, Envoy) on free loopback ports.

Every registered service (services/registry.py) gets two free ports (three with an HTTP port);
``mesh.<name>_port``, ``mesh.<name>_metrics_port``, ``mesh.<name>_http_port`` and ``mesh.<name>``
(its ``127.0.0.1:port``) follow from the registry, so a new service needs no edit here.
"""

from __future__ import annotations

import collections
import json
import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from tradecore_services.mesh.auth import mint
from tradecore_services.mesh.config import settings
from tradecore_services.registry import SERVICES, ServiceSpec, by_name

from tests.conftest import free_port


class _Bearer(grpc.UnaryUnaryClientInterceptor, grpc.UnaryStreamClientInterceptor):  # type: ignore[misc]
    """Adds the token's metadata to every call."""

    def __init__(self, metadata: tuple[tuple[str, str], ...]) -> None:
        self._metadata = metadata

    def _details(self, details: Any) -> Any:
        return _CallDetails(
            details.method,
            details.timeout,
            (*(details.metadata or ()), *self._metadata),
            details.credentials,
            getattr(details, "wait_for_ready", None),
            getattr(details, "compression", None),
        )

    def intercept_unary_unary(self, continuation: Any, details: Any, request: Any) -> Any:
        return continuation(self._details(details), request)

    def intercept_unary_stream(self, continuation: Any, details: Any, request: Any) -> Any:
        return continuation(self._details(details), request)


class _CallDetails(
    collections.namedtuple(
        "_CallDetails",
        ("method", "timeout", "metadata", "credentials", "wait_for_ready", "compression"),
    ),
    grpc.ClientCallDetails,  # type: ignore[misc]
):
    pass


class _AioDetails:
    def __init__(self, metadata: tuple[tuple[str, str], ...]) -> None:
        self._metadata = metadata

    def _details(self, details: Any) -> Any:
        md = grpc.aio.Metadata(*(details.metadata or ()), *self._metadata)
        return grpc.aio.ClientCallDetails(
            details.method, details.timeout, md, details.credentials, details.wait_for_ready
        )


# grpc.aio files an interceptor under the first kind it is an instance of: one class per kind.
class _AioBearerUnary(_AioDetails, grpc.aio.UnaryUnaryClientInterceptor):  # type: ignore[misc]
    async def intercept_unary_unary(self, continuation: Any, details: Any, request: Any) -> Any:
        return await continuation(self._details(details), request)


class _AioBearerStream(_AioDetails, grpc.aio.UnaryStreamClientInterceptor):  # type: ignore[misc]
    async def intercept_unary_stream(self, continuation: Any, details: Any, request: Any) -> Any:
        return await continuation(self._details(details), request)


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
    # "<name>_port", "<name>_metrics_port" (and "<name>_http_port") of every service.
    service_ports: dict[str, int]
    services: tuple[ServiceSpec, ...] = SERVICES
    # Extra environment for the CLI and, through the supervisor, every service.
    env: dict[str, str] = field(default_factory=dict)
    # The gateway's TLS (None: the default, TLS on) and limits (None: the defaults). The shared
    # test mesh is plain and without rate limits, so tests can call it with insecure channels
    # and as fast as they like; tests/integration/test_gateway_edge.py covers TLS and limits.
    tls: str | None = "off"
    gateway_limits: str | None = "*.rate=0"
    _admin_token: str = field(default="", repr=False)

    @classmethod
    def with_free_ports(cls, data_dir: Path, services: tuple[ServiceSpec, ...] = SERVICES) -> Mesh:
        keys = [s.key for s in settings(services) if s.is_port]
        ports: set[int] = set()
        while len(ports) < len(keys):
            ports.add(free_port())
        by_key = dict(zip(keys, sorted(ports), strict=True))
        fixed = ("gateway_port", "admin_port", "nats_port", "nats_monitor_port")
        return cls(
            data_dir,
            *(by_key.pop(k) for k in fixed),
            service_ports=by_key,
            services=services,
        )

    def __getattr__(self, name: str) -> str | int:
        # mesh.<name>_port / mesh.<name>_metrics_port / mesh.<name> ("127.0.0.1:<port>").
        ports = self.__dict__.get("service_ports", {})
        if name in ports:
            return int(ports[name])
        if f"{name}_port" in ports:
            return f"127.0.0.1:{ports[f'{name}_port']}"
        raise AttributeError(f"{type(self).__name__} has no attribute {name!r}")

    def port_values(self) -> dict[str, int]:
        return {
            "gateway_port": self.gateway_port,
            "admin_port": self.admin_port,
            "nats_port": self.nats_port,
            "nats_monitor_port": self.nats_monitor_port,
            **self.service_ports,
        }

    def args(self) -> list[str]:
        values = self.port_values()
        out = ["--data-dir", str(self.data_dir)]
        for s in settings(self.services):
            if s.is_port:
                out += [s.flag, str(values[s.key])]
        if self.tls is not None:
            out += ["--tls", self.tls]
        if self.gateway_limits is not None:
            out += ["--gateway-limits", self.gateway_limits]
        return out

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

    def token(self, role: str = "admin", account: str = "", ttl_s: int = 6 * 3600) -> str:
        """A token signed with the mesh's key (the gateway asks for one on every route but the
        health checks); the admin token is made once and kept."""
        if (role, account) == ("admin", "") and self._admin_token:
            return self._admin_token
        tok = mint(self.data_dir, role, account, ttl_s)
        if (role, account) == ("admin", ""):
            self._admin_token = tok
        return tok

    def auth_headers(self, role: str = "admin", account: str = "") -> dict[str, str]:
        """``authorization: Bearer <token>`` for urllib requests to the gateway."""
        return {"authorization": f"Bearer {self.token(role, account)}"}

    def metadata(self, role: str = "admin", account: str = "") -> tuple[tuple[str, str], ...]:
        """The token as gRPC call metadata."""
        return (("authorization", f"Bearer {self.token(role, account)}"),)

    def channel(
        self, target: str | None = None, options: list[tuple[str, object]] | None = None
    ) -> grpc.Channel:
        """A channel to ``target`` (default: the gateway) whose calls carry the admin token
        (a service called directly ignores it)."""
        ch = grpc.insecure_channel(target or self.gateway, options=options)
        return grpc.intercept_channel(ch, _Bearer(self.metadata()))

    def triton(self, client: Any) -> Any:
        """``client`` (a tritonclient grpc or http InferenceServerClient) with the admin token on
        every call."""
        from tritonclient._plugin import InferenceServerClientPlugin

        header = self.auth_headers()

        class Bearer(InferenceServerClientPlugin):  # type: ignore[misc]
            def __call__(self, request: Any) -> None:
                request.headers = {**(request.headers or {}), **header}

        client.register_plugin(Bearer())
        return client

    def aio_channel(self, target: str | None = None) -> grpc.aio.Channel:
        """:meth:`channel` for grpc.aio."""
        return grpc.aio.insecure_channel(
            target or self.gateway,
            interceptors=[_AioBearerUnary(self.metadata()), _AioBearerStream(self.metadata())],
        )

    @property
    def gateway(self) -> str:
        return f"127.0.0.1:{self.gateway_port}"

    @property
    def nats_url(self) -> str:
        return f"nats://127.0.0.1:{self.nats_port}"

    def state(self) -> dict[str, object]:
        return dict(json.loads((self.data_dir / "mesh.json").read_text()))

    def wait_serving(self, name: str, timeout: float = 60.0) -> None:
        """Wait until service ``name`` answers its gRPC health check SERVING (its
        dependencies, e.g. NATS, connected): a test that restarts a service leaves the shared
        mesh ready for the next one."""
        spec = by_name(name, self.services)
        target = str(getattr(self, name))
        deadline = time.monotonic() + timeout
        last = "no answer"
        while time.monotonic() < deadline:
            with grpc.insecure_channel(target) as ch:
                try:
                    resp = health_pb2_grpc.HealthStub(ch).Check(
                        health_pb2.HealthCheckRequest(service=spec.health_service), timeout=2
                    )
                    if resp.status == health_pb2.HealthCheckResponse.SERVING:
                        return
                    last = health_pb2.HealthCheckResponse.ServingStatus.Name(resp.status)
                except grpc.RpcError as e:
                    last = e.code().name
            time.sleep(0.1)
        raise AssertionError(f"{name} is not SERVING after {timeout:g} s (last: {last})")

    def wait_all_serving(self, timeout: float = 60.0) -> None:
        """:meth:`wait_serving` for every service of the mesh."""
        deadline = time.monotonic() + timeout
        for spec in self.services:
            self.wait_serving(spec.name, max(deadline - time.monotonic(), 1.0))
