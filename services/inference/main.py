"""InferenceService process: the Open Inference Protocol (KServe v2) over gRPC
(``inference.GRPCInferenceService``, the package and names Triton uses, so tritonclient works
unchanged) on TRADECORE_PORT and over REST on TRADECORE_HTTP_PORT, one process and one event
loop. Models come from a :class:`~tradecore.inference.ModelSource`: by default a Triton-layout
directory (TRADECORE_INFERENCE_MODEL_REPOSITORY, default ``<data>/models``), every model of which
is loaded at start. Triton's Prometheus metrics are on the metrics port.

Settings beyond ServiceSettings (the registry entry lists them for the README):
TRADECORE_HTTP_PORT (REST port, 0: none), TRADECORE_INFERENCE_MODEL_REPOSITORY,
TRADECORE_INFERENCE_MAX_ELEMENTS (elements per input tensor), TRADECORE_INFERENCE_INLINE_US
(calls estimated to compute in at most this many microseconds run on the event loop; 0: every
call on the model's thread)."""

from __future__ import annotations

import logging
import os
from importlib import metadata
from pathlib import Path

from aiohttp import web
from prometheus_client import CollectorRegistry
from tradecore.inference import ModelSource
from tradecore.inference.repository import DirectorySource
from tradecore_api.inference import grpc_service_pb2 as pb
from tradecore_api.inference import grpc_service_pb2_grpc as pb_grpc

from ..common.server import ServiceApp, main
from ..common.settings import ServiceSettings, env_int
from ..registry import by_name
from . import rest
from .metrics import TritonCollector
from .models import DirectRunner, Models
from .servicer import EXTENSIONS, SERVER_NAME, InferenceServicer

SERVICE_NAME = pb.DESCRIPTOR.services_by_name["GRPCInferenceService"].full_name
SPEC = by_name("inference")
log = logging.getLogger("tradecore.inference")
DEFAULT_MAX_ELEMENTS = 1 << 24
# A call estimated to compute in at most this long runs on the loop (models.DirectRunner): about
# the cost of the thread hand-off it saves (~100 us at p50 on the 2-core dev VM).
DEFAULT_INLINE_US = 100


def _version() -> str:
    try:
        return metadata.version("tradecore")
    except metadata.PackageNotFoundError:
        return "0"


def default_source(settings: ServiceSettings) -> DirectorySource:
    root = os.environ.get("TRADECORE_INFERENCE_MODEL_REPOSITORY") or str(
        settings.data_dir / "models"
    )
    return DirectorySource(Path(root))


class InferenceApp:
    """The service's parts, each made once: the metrics registry (with Triton's metrics), the
    loaded models over ``source``, the gRPC servicer and the REST application on ``http_port``
    (0: no REST server). :meth:`start` loads the source's models and starts the REST server;
    :meth:`stop` stops it and closes the models after the gRPC server has drained."""

    def __init__(
        self,
        settings: ServiceSettings,
        source: ModelSource,
        *,
        http_port: int,
        max_elements: int = DEFAULT_MAX_ELEMENTS,
        inline_us: int = DEFAULT_INLINE_US,
    ) -> None:
        self.settings = settings
        self.http_port = http_port
        self.registry = CollectorRegistry()
        inline_ns = inline_us * 1000
        self.models = Models(
            source,
            runner_factory=lambda engine: DirectRunner(engine, inline_ns),
            max_elements=max_elements,
        )
        self.registry.register(TritonCollector(self.models.loaded))
        version = _version()
        self.servicer = InferenceServicer(self.models, version)
        self.http_app = rest.make_app(
            self.models,
            server_name=SERVER_NAME,
            version=version,
            extensions=EXTENSIONS,
            max_body_bytes=settings.max_message_bytes,
        )
        self._runner: web.AppRunner | None = None

    def service_app(self) -> ServiceApp:
        return ServiceApp(
            settings=self.settings,
            register=lambda server: pb_grpc.add_GRPCInferenceServiceServicer_to_server(
                self.servicer, server
            ),
            service_names=[SERVICE_NAME],
            on_start=[self.start],
            on_stop=[self.stop],
            registry=self.registry,
        )

    async def start(self) -> None:
        await self.models.load_all()
        if self.http_port:
            runner = web.AppRunner(self.http_app, access_log=None)
            await runner.setup()
            site = web.TCPSite(runner, self.settings.host, self.http_port, reuse_port=False)
            try:
                await site.start()
            except OSError as exc:
                await runner.cleanup()
                raise SystemExit(
                    f"inference: cannot listen on {self.settings.host}:{self.http_port} "
                    f"(REST): {exc}"
                ) from exc
            self._runner = runner
            log.info("inference REST on %s:%s", self.settings.host, self.http_port)

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        await self.models.close()


def build(source: ModelSource | None = None) -> ServiceApp:
    settings = ServiceSettings.from_env(SPEC.name, port=SPEC.port, metrics_port=SPEC.metrics_port)
    http_port = env_int("TRADECORE_HTTP_PORT", SPEC.http_port or 0, minimum=0)
    max_elements = env_int("TRADECORE_INFERENCE_MAX_ELEMENTS", DEFAULT_MAX_ELEMENTS, minimum=1)
    inline_us = env_int("TRADECORE_INFERENCE_INLINE_US", DEFAULT_INLINE_US, minimum=0)
    return InferenceApp(
        settings,
        source if source is not None else default_source(settings),
        http_port=http_port,
        max_elements=max_elements,
        inline_us=inline_us,
    ).service_app()


def run() -> None:
    main(build)


if __name__ == "__main__":
    run()
