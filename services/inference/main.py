"""InferenceService process: the Open Inference Protocol (KServe v2) over gRPC
(``inference.GRPCInferenceService``, the package and names Triton uses, so tritonclient works
unchanged) on TRADECORE_PORT and over REST on TRADECORE_HTTP_PORT, and the model registry's
``tradecore.inference.v1.ModelService`` on the same gRPC port, one process and one event loop.
Models come from the model registry (files under ``<data>/registry``, catalogue in the service's
ClickHouse store), served by its aliases and traffic policies; with
TRADECORE_INFERENCE_MODEL_REPOSITORY set, from that Triton-layout directory instead. Every model
is loaded at start. Triton's Prometheus metrics are on the metrics port.

Settings beyond ServiceSettings (the registry entry lists them for the README):
TRADECORE_HTTP_PORT (REST port, 0: none), TRADECORE_INFERENCE_MODEL_REPOSITORY,
TRADECORE_INFERENCE_MAX_ELEMENTS (elements per input tensor), TRADECORE_INFERENCE_INLINE_US
(calls estimated to compute in at most this many microseconds run on the event loop; 0: every
call on the model's thread), TRADECORE_INFERENCE_MAX_ON_DEMAND (versions per model loaded for
requests that name them, beyond the default and the challenger; 0: such requests are
NOT_FOUND)."""

from __future__ import annotations

import asyncio
import logging
import os
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

import grpc
from aiohttp import web
from prometheus_client import CollectorRegistry
from tradecore.inference import ModelSource
from tradecore.inference.drift import DriftReport
from tradecore.inference.monitor import MonitorRecorder
from tradecore.inference.registry import ModelRegistry
from tradecore.inference.repository import DirectorySource
from tradecore.inference.rollout import Router
from tradecore.store import Store, connect
from tradecore_api.inference import grpc_service_pb2 as pb
from tradecore_api.inference import grpc_service_pb2_grpc as pb_grpc
from tradecore_api.inference.v1 import models_pb2 as models_pb
from tradecore_api.inference.v1 import models_pb2_grpc as models_pb_grpc

from ..common.bus import Bus
from ..common.server import ServiceApp, main
from ..common.settings import ServiceSettings, env_int
from ..registry import by_name
from . import monitor_page, rest
from .drift_watch import DriftWatch, DriftWatchSettings
from .metrics import TritonCollector
from .models import Models, runner_factory
from .models_servicer import ModelsServicer
from .servicer import EXTENSIONS, SERVER_NAME, InferenceServicer

SERVICE_NAME = pb.DESCRIPTOR.services_by_name["GRPCInferenceService"].full_name
MODEL_SERVICE_NAME = models_pb.DESCRIPTOR.services_by_name["ModelService"].full_name
SPEC = by_name("inference")
log = logging.getLogger("tradecore.inference")
DEFAULT_MAX_ELEMENTS = 1 << 24
# A call estimated to compute in at most this long runs on the loop (models.DirectRunner): about
# the cost of the thread hand-off it saves (~100 us at p50 on the 2-core dev VM).
DEFAULT_INLINE_US = 100
# Versions a model keeps loaded for requests naming them, beyond its default and challenger.
DEFAULT_MAX_ON_DEMAND = 2


def _version() -> str:
    try:
        return metadata.version("tradecore")
    except metadata.PackageNotFoundError:
        return "0"


def directory_source() -> DirectorySource | None:
    """The Triton-layout directory TRADECORE_INFERENCE_MODEL_REPOSITORY names (None: unset,
    the registry is the source)."""
    root = os.environ.get("TRADECORE_INFERENCE_MODEL_REPOSITORY", "")
    return DirectorySource(Path(root)) if root else None


@dataclass
class ModelStore:
    """The service's one ClickHouse store (chDB allows one engine per process) with the model
    registry and the traffic router over it, all made on ``executor``, the one thread every
    store call runs on."""

    executor: ThreadPoolExecutor
    store: Store
    registry: ModelRegistry
    router: Router

    @classmethod
    def open(cls, data_dir: Path, dsn: str) -> ModelStore:
        executor = ThreadPoolExecutor(1, thread_name_prefix="model-store")

        def make() -> tuple[Store, ModelRegistry, Router]:
            store = connect(dsn)
            try:
                registry = ModelRegistry(data_dir / "registry", store)
                return store, registry, Router(registry, store)
            except BaseException:
                store.close()
                raise

        try:
            store, registry, router = executor.submit(make).result()
        except BaseException:
            executor.shutdown()
            raise
        return cls(executor, store, registry, router)

    async def close(self) -> None:
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(self.executor, self.store.close)
        await loop.run_in_executor(None, self.executor.shutdown, True)


class InferenceApp:
    """The service's parts, each made once: the model store (registry and traffic router, see
    :class:`ModelStore`), the metrics registry (with Triton's metrics), the monitor's recorder
    (every inference, by version and role), the loaded models, the gRPC servicers (the
    inference API and the ModelService) and the REST application on ``http_port`` (0: no REST
    server) with the monitoring page under ``/monitor``.

    Models come from the registry, routed by its traffic policies; with ``source`` (a
    Triton-layout directory) from there instead, every request to a model's default version
    (the ModelService still keeps the registry, which then does not steer serving).
    :meth:`start` loads the source's models and starts the REST server; :meth:`stop` stops it,
    waits for the shadow runs in flight, closes the models and the store after the gRPC server
    has drained. The store is opened here, before the event loop runs (``build``)."""

    def __init__(
        self,
        settings: ServiceSettings,
        source: ModelSource | None = None,
        *,
        http_port: int,
        max_elements: int = DEFAULT_MAX_ELEMENTS,
        inline_us: int = DEFAULT_INLINE_US,
        max_on_demand: int = DEFAULT_MAX_ON_DEMAND,
    ) -> None:
        self.settings = settings
        self.http_port = http_port
        self.registry = CollectorRegistry()
        self.model_store = ModelStore.open(settings.data_dir, settings.clickhouse_dsn)
        registry_source = source is None
        inline_ns = inline_us * 1000
        self.recorder = MonitorRecorder()
        # Drift alerts go out on NATS (model.drift.<model>); serving does not need NATS, so it
        # is not a dependency of the service's health.
        self.bus = Bus(settings.nats_url, "inference")
        self.drift = DriftWatch.from_settings(
            self.bus, DriftWatchSettings.from_env(), on_report=self._plot_drift
        )
        self.models = Models(
            source if source is not None else self.model_store.registry,
            router=self.model_store.router if registry_source else None,
            runner_factory=runner_factory(inline_ns),
            max_elements=max_elements,
            max_on_demand=max_on_demand,
            recorder=self.recorder,
            drift=self.drift,
        )
        self.registry.register(TritonCollector(self.models.loaded))
        version = _version()
        self.servicer = InferenceServicer(self.models, version)
        self.models_servicer = ModelsServicer(
            self.model_store.registry,
            self.model_store.router,
            self.model_store.executor,
            on_change=self.models.sync if registry_source else None,
        )
        self.http_app = rest.make_app(
            self.models,
            server_name=SERVER_NAME,
            version=version,
            extensions=EXTENSIONS,
            max_body_bytes=settings.max_message_bytes,
        )
        monitor_page.add_routes(self.http_app, self.recorder)
        self._runner: web.AppRunner | None = None

    def register(self, server: grpc.aio.Server) -> None:
        pb_grpc.add_GRPCInferenceServiceServicer_to_server(self.servicer, server)
        models_pb_grpc.add_ModelServiceServicer_to_server(self.models_servicer, server)

    def service_app(self) -> ServiceApp:
        return ServiceApp(
            settings=self.settings,
            register=self.register,
            service_names=[SERVICE_NAME, MODEL_SERVICE_NAME],
            on_start=[self.start],
            on_stop=[self.stop],
            registry=self.registry,
        )

    def _plot_drift(self, model: str, version: int, report: DriftReport) -> None:
        """Every tested window's scores on the monitoring page (by feature and test)."""
        t = (report.window.end_time_ns or time.time_ns()) / 1e9
        for r in report.results:
            self.recorder.record_drift(
                model, str(version), r.feature, r.test, r.statistic, r.drifted, t
            )

    async def start(self) -> None:
        await self.bus.start()
        await self.drift.start()
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
        await self.model_store.router.drain()
        await self.models.close()
        await self.drift.stop()
        await self.bus.stop()
        await self.model_store.close()


def build(source: ModelSource | None = None) -> ServiceApp:
    settings = ServiceSettings.from_env(SPEC.name, port=SPEC.port, metrics_port=SPEC.metrics_port)
    http_port = env_int("TRADECORE_HTTP_PORT", SPEC.http_port or 0, minimum=0)
    max_elements = env_int("TRADECORE_INFERENCE_MAX_ELEMENTS", DEFAULT_MAX_ELEMENTS, minimum=1)
    inline_us = env_int("TRADECORE_INFERENCE_INLINE_US", DEFAULT_INLINE_US, minimum=0)
    max_on_demand = env_int("TRADECORE_INFERENCE_MAX_ON_DEMAND", DEFAULT_MAX_ON_DEMAND, minimum=0)
    return InferenceApp(
        settings,
        source if source is not None else directory_source(),
        http_port=http_port,
        max_elements=max_elements,
        inline_us=inline_us,
        max_on_demand=max_on_demand,
    ).service_app()


def run() -> None:
    main(build)


if __name__ == "__main__":
    run()
