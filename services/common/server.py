"""grpc.aio server bootstrap shared by every service.

Health (grpc.health.v1) and reflection are registered for every service: the overall status
("") is SERVING while the process serves, each service's own name is SERVING only while every
dependency the service watches (``ServiceApp.dependencies``, e.g. its NATS connection) is up and
NOT_SERVING while one is down. One interceptor maps
exceptions to status codes and records metrics; Prometheus metrics are served on a loopback
port; SIGTERM/SIGINT flip health to NOT_SERVING, stop accepting, drain in-flight calls for the
grace period, run the service's shutdown hooks (drain NATS, flush stores) and exit. A service
process (:func:`main`) that has not exited STOP_BUDGET_S after its grace period writes every
thread's stack to its log and exits: a stuck hook never leaves an orphan holding its ports.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import faulthandler
import gc
import json
import logging
import logging.handlers
import os
import signal
import sys
import threading
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection
from opentelemetry import trace
from prometheus_client import CollectorRegistry, start_http_server

from . import tracing
from .interceptors import RpcMetrics, ServiceInterceptor
from .settings import ServiceSettings

log = logging.getLogger("tradecore.server")

Hook = Callable[[], Awaitable[None]]
# A dependency's watcher: calls its argument with whether the dependency is up, at once and on
# every change, until cancelled (e.g. :meth:`~.bus.Bus.watch`).
Watch = Callable[[Callable[[bool], Awaitable[None]]], Coroutine[Any, Any, None]]


@dataclass
class ServiceApp:
    """What a service contributes: its servicers, its full names, and start/stop hooks."""

    settings: ServiceSettings
    register: Callable[[grpc.aio.Server], None]
    service_names: Sequence[str]
    on_start: list[Hook] = field(default_factory=list)
    on_stop: list[Hook] = field(default_factory=list)
    # Run when shutdown begins, before in-flight calls drain: end open server streams here so
    # they finish cleanly instead of being cancelled at the end of the grace period.
    on_draining: list[Hook] = field(default_factory=list)
    registry: CollectorRegistry = field(default_factory=CollectorRegistry)
    # What the service needs to do its work: its named health status is NOT_SERVING while
    # any of these reports down.
    dependencies: list[Watch] = field(default_factory=list)
    # Per-call counts and latencies of gRPC calls and of NATS request/reply handlers
    # (services/common/nats_rpc.py), on ``registry``.
    metrics: RpcMetrics = field(init=False)

    def __post_init__(self) -> None:
        self.metrics = RpcMetrics(self.registry, self.settings.service)


LOG_BACKUPS = 3
# After the grace period: the shutdown hooks and the interpreter's exit (which joins executor
# threads) get this long before the process ends itself (exit status EXIT_STUCK).
STOP_BUDGET_S = 5.0
EXIT_STUCK = 70
MAX_METADATA_BYTES = 256 * 1024
LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s%(ids)s"


class _Ids(logging.Filter):
    """Adds the request id and trace/span ids of the call being handled to every record
    (``record.request_id``, ``trace_id``, ``span_id``; ``ids``: them as a text suffix)."""

    def filter(self, record: logging.LogRecord) -> bool:
        rid = tracing.current_request_id.get()
        ctx = trace.get_current_span().get_span_context()
        tid = f"{ctx.trace_id:032x}" if ctx.is_valid else ""
        record.request_id = rid
        record.trace_id = tid
        record.span_id = f"{ctx.span_id:016x}" if ctx.is_valid else ""
        parts = ([f"request_id={rid}"] if rid else []) + ([f"trace_id={tid}"] if tid else [])
        record.ids = f" [{' '.join(parts)}]" if parts else ""
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time (RFC 3339, UTC), level, logger, message, service, and the
    request id, trace id and span id of the call being handled (when there is one), the
    exception's traceback as ``exc``."""

    def __init__(self, service: str) -> None:
        super().__init__()
        self.service = service

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, object] = {
            "time": datetime.datetime.fromtimestamp(record.created, datetime.UTC).isoformat(
                timespec="microseconds"
            ),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "service": self.service,
        }
        for key in ("request_id", "trace_id", "span_id"):
            value = getattr(record, key, "")
            if value:
                out[key] = value
        if record.exc_info:
            out["exc"] = self.formatException(record.exc_info)
        return json.dumps(out, ensure_ascii=False)


def configure_logging(settings: ServiceSettings) -> None:
    """Log to ``settings.log_file``, rotated past ``log_max_bytes`` with LOG_BACKUPS old files
    kept (so the service's logs stay bounded whatever clients send), or to stderr for "-".
    A client error is one line (see interceptors); tracebacks are logged for INTERNAL only.
    ``settings.log_format``: "text" (a line per record, the ids in brackets at its end) or
    "json" (:class:`JsonFormatter`)."""
    handler: logging.Handler
    if settings.log_file == "-":
        handler = logging.StreamHandler(sys.stderr)
    else:
        path = Path(settings.log_file)
        path.parent.mkdir(parents=True, exist_ok=True)
        handler = logging.handlers.RotatingFileHandler(
            path, maxBytes=settings.log_max_bytes, backupCount=LOG_BACKUPS, encoding="utf-8"
        )
    handler.addFilter(_Ids())
    if settings.log_format == "json":
        handler.setFormatter(JsonFormatter(settings.service))
    else:
        handler.setFormatter(logging.Formatter(LOG_FORMAT))
    logging.basicConfig(level=settings.log_level, handlers=[handler], force=True)


def _arm_exit_watchdog(service: str, seconds: float) -> None:
    """End the process ``seconds`` from now, after logging every thread's stack (a daemon
    timer: it outlives :func:`run` and covers the interpreter's exit too)."""

    def fire() -> None:
        log.critical("%s: still shutting down after %.1fs; thread stacks follow", service, seconds)
        streams = [sys.stderr]
        for handler in logging.getLogger().handlers:
            stream = getattr(handler, "stream", None)
            if stream is not None and stream not in streams:
                streams.append(stream)
        for stream in streams:
            with contextlib.suppress(Exception):
                stream.flush()
                faulthandler.dump_traceback(file=stream, all_threads=True)
                stream.flush()
        os._exit(EXIT_STUCK)

    timer = threading.Timer(seconds, fire)
    timer.name = f"{service}-exit-watchdog"
    timer.daemon = True
    timer.start()


class _GenericHandlersOnly:
    """The server as the generated ``add_*Servicer_to_server`` functions see it: their generic
    handlers go in, their pre-registered methods do not. grpc.aio serves every pre-registered
    method by a request-call task of its own and its server loop waits on all of them at once
    (one ``asyncio.wait`` over a task per method, for every call): over the 24 methods of the
    inference service that wait costs 14.2 us against 4.8 us over one (uvloop, measured in a
    tight loop). Through the generic handlers every method is found by one lookup, the path a
    bare grpc.aio echo takes."""

    def __init__(self, server: grpc.aio.Server) -> None:
        self._server = server

    def add_generic_rpc_handlers(self, handlers: Sequence[grpc.GenericRpcHandler]) -> None:
        self._server.add_generic_rpc_handlers(handlers)

    def add_registered_method_handlers(
        self, service: str, handlers: dict[str, grpc.RpcMethodHandler]
    ) -> None:
        """Dropped: the same handlers came in through add_generic_rpc_handlers."""


async def run(
    app: ServiceApp, *, ready: asyncio.Event | None = None, exit_watchdog: bool = False
) -> None:
    """Serve until SIGTERM/SIGINT, then shut down gracefully. ``exit_watchdog`` (a service
    process, not a caller in process): end the process if the shutdown outlasts the grace
    period by STOP_BUDGET_S."""
    s = app.settings
    metrics = app.metrics
    server = grpc.aio.server(
        interceptors=[ServiceInterceptor(metrics)],
        options=[
            ("grpc.max_receive_message_length", s.max_message_bytes),
            ("grpc.max_send_message_length", s.max_message_bytes),
            ("grpc.so_reuseport", 0),
            # Request headers up to what the gateway forwards: Envoy takes 60 KiB of request
            # headers and the JSON transcoder adds a copy of the path (x-envoy-original-path),
            # so a long value in a URL reached gRPC's default 8 KiB soft limit, which rejects
            # such calls at random with RESOURCE_EXHAUSTED (HTTP 429) instead of letting the
            # handler answer INVALID_ARGUMENT.
            ("grpc.max_metadata_size", MAX_METADATA_BYTES),
            ("grpc.absolute_max_metadata_size", MAX_METADATA_BYTES),
        ],
    )
    registrar = cast(grpc.aio.Server, _GenericHandlersOnly(server))
    app.register(registrar)
    tracing.add_receiver(registrar)  # the gateway's spans (services/common/tracing.py)
    health_servicer = health.aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, registrar)
    names = [*app.service_names, health_pb2.DESCRIPTOR.services_by_name["Health"].full_name]
    reflection.enable_server_reflection([*names, reflection.SERVICE_NAME], registrar)
    address = f"{s.host}:{s.port}"
    try:
        bound = server.add_insecure_port(address)
    except RuntimeError as exc:
        raise SystemExit(f"{s.service}: cannot listen on {address} (port in use?): {exc}") from exc
    if bound == 0:
        raise SystemExit(f"{s.service}: cannot listen on {address} (port in use?)")
    metrics_server = None
    if s.metrics_port:
        try:
            metrics_server, _ = start_http_server(s.metrics_port, s.metrics_host, app.registry)
        except OSError as exc:
            raise SystemExit(
                f"{s.service}: metrics port {s.metrics_host}:{s.metrics_port} unavailable: {exc}"
            ) from exc
    for hook in app.on_start:
        await hook()
    # What start made (modules, models, caches) lives as long as the process: out of the
    # collector's generations, a full collection no longer walks it (a pause of milliseconds
    # on a loaded service's heap, in some call's latency).
    gc.collect()
    gc.freeze()
    await server.start()
    up = [False] * len(app.dependencies)

    async def set_named() -> None:
        status = health_pb2.HealthCheckResponse.SERVING
        if not all(up):
            status = health_pb2.HealthCheckResponse.NOT_SERVING
        for name in app.service_names:
            await health_servicer.set(name, status)

    def watcher(i: int) -> Callable[[bool], Awaitable[None]]:
        async def on_change(ok: bool) -> None:
            if up[i] != ok:
                up[i] = ok
                log.log(
                    logging.INFO if ok else logging.WARNING,
                    "%s: a dependency is %s: %s",
                    s.service,
                    "up" if ok else "down",
                    "SERVING" if all(up) else "NOT_SERVING",
                )
                await set_named()

        return on_change

    await set_named()
    watchers: list[asyncio.Task[None]] = [
        asyncio.create_task(watch(watcher(i)), name=f"{s.service}-dependency-{i}")
        for i, watch in enumerate(app.dependencies)
    ]
    await health_servicer.set("", health_pb2.HealthCheckResponse.SERVING)
    log.info("%s serving on %s (metrics %s:%s)", s.service, address, s.metrics_host, s.metrics_port)
    if ready is not None:
        ready.set()

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop.set)
    try:
        await stop.wait()
    finally:
        log.info("%s shutting down: NOT_SERVING, draining for %.1fs", s.service, s.grace_seconds)
        if exit_watchdog:
            _arm_exit_watchdog(s.service, s.grace_seconds + STOP_BUDGET_S)
        for task in watchers:
            task.cancel()
        await asyncio.gather(*watchers, return_exceptions=True)
        await health_servicer.enter_graceful_shutdown()
        for hook in app.on_draining:
            try:
                await hook()
            except Exception:
                log.exception("%s: draining hook failed", s.service)
        await server.stop(s.grace_seconds)
        for hook in reversed(app.on_stop):
            try:
                await hook()
            except Exception:
                log.exception("%s: shutdown hook failed", s.service)
        if metrics_server is not None:
            metrics_server.shutdown()
        log.info("%s stopped", s.service)


def main(build: Callable[[], ServiceApp]) -> None:
    """Process entry: build the app, install uvloop when present, serve."""
    app = build()
    configure_logging(app.settings)
    tracing.configure(app.settings.service)
    try:
        import uvloop
    except ImportError:
        asyncio.run(run(app, exit_watchdog=True))
    else:
        uvloop.run(run(app, exit_watchdog=True))
    tracing.shutdown()
