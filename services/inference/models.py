"""The loaded models: name -> loaded versions, each an engine behind a runner, with its
statistics; loading from the model source, validation and inference (no gRPC, no HTTP here:
the gRPC servicer and the REST server both call :class:`Models`).

A runner is the one seam between a request and an engine: :class:`DirectRunner` runs the
engine on a thread of its own (an engine runs one call at a time); a dynamic batcher can take
its place per model without the protocol layers changing.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy.typing as npt
from tradecore.errors import NotFoundError, PreconditionError, quote
from tradecore.inference import (
    Engine,
    ModelMetadata,
    ModelSource,
    ModelVersion,
    OnnxEngine,
    Tensors,
    validate_inputs,
)

log = logging.getLogger("tradecore.inference")

EngineFactory = Callable[[ModelVersion], Engine]


def onnx_engine(mv: ModelVersion) -> Engine:
    """An engine for a stored version: ONNX Runtime for ``onnxruntime_onnx`` (its config's
    ``max_batch_size`` applied); other platforms are refused naming the model."""
    if mv.platform != "onnxruntime_onnx":
        raise PreconditionError(
            f"model {mv.name!r} version {mv.version}: platform {mv.platform!r} is not served "
            "(onnxruntime_onnx is)"
        )
    raw = mv.config.get("max_batch_size")
    try:
        max_batch = int(raw) if raw is not None else None
    except ValueError:
        raise ValueError(
            f"model {mv.name!r}: max_batch_size {quote(raw)} is not an integer"
        ) from None
    return OnnxEngine(mv.path, name=mv.name, version=str(mv.version), max_batch_size=max_batch)


@dataclass
class Timings:
    """How long one inference spent waiting for the engine and running on it (ns)."""

    queue_ns: int
    compute_ns: int


class Runner(Protocol):
    """Runs validated inputs through one loaded version."""

    async def run(self, inputs: Tensors) -> tuple[Tensors, Timings]: ...

    def close(self) -> None: ...


class DirectRunner:
    """Each call straight to the engine, one call at a time (as the Engine protocol asks).

    Where a call runs follows the services' rule for CPU work (docs/architecture.md, "CPU work
    and the event loop"): a call whose estimated compute time is at most ``inline_ns`` runs on
    the event loop, with no thread hand-off on its path (the hand-off alone costs ~100 us at
    p50 and milliseconds at p99 on a loaded machine, against ~12 us for a small MLP); anything
    larger, or any call while the engine is busy, runs on the runner's own thread so the loop
    stays free. The estimate is the measured compute time per batch row (an exponential
    average over the calls so far) times the call's rows; until a call has been measured every
    call goes to the thread. ``inline_ns=0`` keeps every call off the loop."""

    def __init__(self, engine: Engine, inline_ns: int = 0) -> None:
        self.engine = engine
        self.inline_ns = inline_ns
        self._busy = threading.Lock()
        self._ns_per_row: float | None = None
        name = f"infer-{engine.metadata.name}-{engine.metadata.version}"
        self._pool = ThreadPoolExecutor(1, thread_name_prefix=name[:15])

    def _measure(self, rows: int, ns: int) -> None:
        per_row = ns / max(rows, 1)
        prev = self._ns_per_row
        self._ns_per_row = per_row if prev is None else 0.8 * prev + 0.2 * per_row

    def _run(self, inputs: Tensors, rows: int, submitted: int) -> tuple[Tensors, Timings]:
        with self._busy:
            start = time.perf_counter_ns()
            out = self.engine.run(inputs)
            done = time.perf_counter_ns()
            self._measure(rows, done - start)
        return out, Timings(start - submitted, done - start)

    def inline(self, rows: int) -> bool:
        """Whether a call of ``rows`` batch rows is estimated to be small enough for the loop."""
        per_row = self._ns_per_row
        return per_row is not None and per_row * rows <= self.inline_ns

    async def run(self, inputs: Tensors) -> tuple[Tensors, Timings]:
        rows = _rows(self.engine.metadata, inputs)
        submitted = time.perf_counter_ns()
        if self.inline(rows) and self._busy.acquire(blocking=False):
            try:
                out = self.engine.run(inputs)
                done = time.perf_counter_ns()
                self._measure(rows, done - submitted)
            finally:
                self._busy.release()
            return out, Timings(0, done - submitted)
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._pool, self._run, inputs, rows, submitted)

    def close(self) -> None:
        self._pool.shutdown(wait=True)
        self.engine.close()


RunnerFactory = Callable[[Engine], Runner]


@dataclass
class Duration:
    count: int = 0
    ns: int = 0

    def add(self, ns: int) -> None:
        self.count += 1
        self.ns += ns


@dataclass
class Stats:
    """One version's counters, Triton's statistics (read by ModelStatistics and the metrics)."""

    success: Duration = field(default_factory=Duration)
    fail: Duration = field(default_factory=Duration)
    queue: Duration = field(default_factory=Duration)
    compute_infer: Duration = field(default_factory=Duration)
    inference_count: int = 0
    execution_count: int = 0
    last_inference_ms: int = 0


@dataclass
class Loaded:
    """One loaded version."""

    version: ModelVersion
    metadata: ModelMetadata
    runner: Runner
    stats: Stats = field(default_factory=Stats)


@dataclass
class ModelState:
    """A model the service knows: its loaded versions (by version text) and the default one."""

    name: str
    versions: dict[str, Loaded] = field(default_factory=dict)
    default: str = ""
    reason: str = ""


@dataclass(frozen=True)
class IndexEntry:
    name: str
    version: str
    state: str  # READY or UNAVAILABLE
    reason: str = ""


class Models:
    """The repository of loaded models over a :class:`ModelSource`.

    ``load(name)`` loads the version the source resolves (its ``champion`` alias, else the
    newest) and makes it the model's default, replacing what was loaded; ``unload`` drops every
    version. Loading runs on a thread (ONNX Runtime builds its session there); inference runs
    through each version's runner. ``max_elements`` caps every input tensor."""

    def __init__(
        self,
        source: ModelSource,
        *,
        engine_factory: EngineFactory = onnx_engine,
        runner_factory: RunnerFactory = DirectRunner,
        max_elements: int = 1 << 24,
    ) -> None:
        self.source = source
        self.max_elements = max_elements
        self._engine_factory = engine_factory
        self._runner_factory = runner_factory
        self._models: dict[str, ModelState] = {}
        self._lock = threading.Lock()  # guards _models against the loader threads
        # One load or unload at a time (they are rare; a lock per name would grow with every
        # name a client sends).
        self._loading = asyncio.Lock()
        self.ready = False

    # -- repository ----------------------------------------------------------------------
    async def load_all(self) -> None:
        """Load every model of the source (errors are logged and kept as the model's reason:
        one bad model does not keep the others from serving)."""
        try:
            names = sorted({mv.name for mv in await asyncio.to_thread(self.source.index)})
        except Exception as exc:
            log.error("model source %r: cannot list its models: %s", self.source, exc)
            names = []
        for name in names:
            try:
                await self.load(name)
            except Exception as exc:
                log.error("model %r not loaded: %s", name, exc)
                with self._lock:
                    self._models.setdefault(name, ModelState(name)).reason = str(exc)
        self.ready = True

    async def load(self, name: str, ref: str | None = None) -> Loaded:
        """Load (or reload) ``name`` at ``ref`` (a version or alias; None: the source's
        default), warm it up and make it the default version."""
        async with self._loading:
            mv = await asyncio.to_thread(self.source.resolve, name, ref)
            engine = await asyncio.to_thread(self._make_engine, mv)
            loaded = Loaded(mv, engine.metadata, self._runner_factory(engine))
            version = str(mv.version)
            with self._lock:
                state = self._models.setdefault(name, ModelState(name))
                old = state.versions
                state.versions = {version: loaded}
                state.default = version
                state.reason = ""
            for prev in old.values():
                await asyncio.to_thread(prev.runner.close)
            log.info("model %r version %s loaded (%s)", name, version, mv.path)
            return loaded

    def _make_engine(self, mv: ModelVersion) -> Engine:
        engine = self._engine_factory(mv)
        engine.warmup()
        return engine

    async def unload(self, name: str) -> None:
        async with self._loading:
            with self._lock:
                state = self._models.get(name)
                if state is None or not state.versions:
                    raise NotFoundError(f"model {name!r} is not loaded")
                old = state.versions
                state.versions, state.default, state.reason = {}, "", "unloaded"
            for prev in old.values():
                await asyncio.to_thread(prev.runner.close)
            log.info("model %r unloaded", name)

    def index(self, ready_only: bool = False) -> list[IndexEntry]:
        """Every model the source stores and every loaded one, with its state."""
        out: dict[tuple[str, str], IndexEntry] = {}
        with self._lock:
            states = {n: (dict(s.versions), s.reason) for n, s in self._models.items()}
        if not ready_only:
            try:
                stored = self.source.index()
            except Exception as exc:
                log.error("model source %r: cannot list its models: %s", self.source, exc)
                stored = []
            for mv in stored:
                reason = states.get(mv.name, ({}, ""))[1]
                out[(mv.name, str(mv.version))] = IndexEntry(
                    mv.name, str(mv.version), "UNAVAILABLE", reason
                )
        for name, (versions, _) in states.items():
            for v in versions:
                out[(name, v)] = IndexEntry(name, v, "READY")
        return [out[k] for k in sorted(out)]

    # -- lookups ---------------------------------------------------------------------------
    def get(self, name: str, version: str = "") -> Loaded:
        """The loaded ``version`` of ``name`` ("" for its default); NotFoundError naming the
        model or the version otherwise."""
        state = self._models.get(name)
        if state is None or not state.versions:
            raise NotFoundError(f"model {quote(name)} is not loaded")
        loaded = state.versions.get(version or state.default)
        if loaded is None:
            raise NotFoundError(
                f"model {name!r} has no loaded version {quote(version)} (loaded: "
                f"{sorted(state.versions)})"
            )
        return loaded

    def versions(self, name: str) -> list[str]:
        self.get(name)
        return sorted(self._models[name].versions, key=int)

    def is_ready(self, name: str, version: str = "") -> bool:
        try:
            self.get(name, version)
        except NotFoundError:
            return False
        return True

    def loaded(self) -> list[Loaded]:
        with self._lock:
            return [lv for s in self._models.values() for lv in s.versions.values()]

    async def close(self) -> None:
        """Close every loaded version (after the servers have drained)."""
        with self._lock:
            versions = [lv for s in self._models.values() for lv in s.versions.values()]
            self._models.clear()
        for lv in versions:
            await asyncio.to_thread(lv.runner.close)

    # -- inference -------------------------------------------------------------------------
    async def infer(
        self, loaded: Loaded, inputs: Mapping[str, npt.NDArray[Any]], outputs: list[str] | None
    ) -> Tensors:
        """Validate ``inputs`` against the model (ValueError naming the tensor), run them, and
        return the requested outputs (all when ``outputs`` is empty or None), counting the
        request in the version's statistics."""
        start = time.perf_counter_ns()
        stats = loaded.stats
        try:
            meta = loaded.metadata
            declared = {t.name for t in meta.outputs}
            for name in outputs or ():
                if name not in declared:
                    raise ValueError(
                        f"output tensor {quote(name)}: model {meta.name!r} has outputs "
                        f"{sorted(declared)}"
                    )
            arrays = validate_inputs(meta, inputs, max_elements=self.max_elements)
            result, timings = await loaded.runner.run(arrays)
        except BaseException:
            stats.fail.add(time.perf_counter_ns() - start)
            raise
        stats.success.add(time.perf_counter_ns() - start)
        stats.queue.add(timings.queue_ns)
        stats.compute_infer.add(timings.compute_ns)
        stats.execution_count += 1
        stats.inference_count += _rows(loaded.metadata, arrays)
        stats.last_inference_ms = time.time_ns() // 1_000_000
        if outputs:
            return {n: result[n] for n in outputs}
        return result


def _rows(meta: ModelMetadata, arrays: Tensors) -> int:
    """The batch size of a call (1 for a model that does not batch)."""
    if meta.max_batch_size > 0 and arrays:
        first = next(iter(arrays.values()))
        return int(first.shape[0]) if first.ndim else 1
    return 1
