"""The loaded models: name -> loaded versions, each an engine behind a runner, with its
statistics; loading from the model source, validation and inference (no gRPC, no HTTP here:
the gRPC servicer and the REST server both call :class:`Models`).

A runner is the one seam between a request and an engine: :class:`DirectRunner` runs the
engine on a thread of its own (an engine runs one call at a time); a dynamic batcher can take
its place per model without the protocol layers changing.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import threading
import time
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import InitVar, dataclass, field
from typing import Any, Protocol

import numpy.typing as npt
from tradecore.errors import NotFoundError, PreconditionError, UnavailableError, quote
from tradecore.inference import (
    Engine,
    ModelMetadata,
    ModelSource,
    ModelVersion,
    OnnxEngine,
    Tensors,
)
from tradecore.inference.batching import DEFAULT_MAX_QUEUE, BatchStats, DynamicBatcher
from tradecore.inference.drift import DriftDetector
from tradecore.inference.monitor import MonitorRecorder
from tradecore.inference.rollout import PolicyKind, Router
from tradecore.inference.types import MAX_ELEMENTS, InputValidator

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
    """Runs validated inputs through one loaded version: the outputs, and the call's queue and
    compute times, or None when the runner counts executions and their times into the
    version's statistics itself (a batcher: one execution serves several calls)."""

    async def run(self, inputs: Tensors) -> tuple[Tensors, Timings | None]: ...

    def close(self) -> None: ...


class DirectRunner:
    """Each call straight to the engine, one call at a time (as the Engine protocol asks).

    Where a call runs follows the services' rule for CPU work (docs/architecture.md, "CPU work
    and the event loop"): a call whose estimated compute time is at most ``inline_ns`` runs on
    the event loop, with no thread hand-off on its path (the hand-off alone costs ~100 us at
    p50 and milliseconds at p99 on a loaded machine, against ~12 us for a small MLP); anything
    larger, or any call while the engine is busy, runs on the runner's own thread so the loop
    stays free. The estimate is the measured compute time per batch row (an exponential
    average over the calls so far, an outlier counted as 4x the average) times the call's
    rows; until a call has been measured every call goes to the thread. ``inline_ns=0`` keeps
    every call off the loop."""

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
        if prev is None:
            self._ns_per_row = per_row
        else:
            # A call the machine paused (preempted, a page fault) counts as at most 4x the
            # estimate: one such outlier must not send the next calls through the thread.
            self._ns_per_row = 0.8 * prev + 0.2 * min(per_row, 4.0 * prev)

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

    def run_now(self, inputs: Tensors, rows: int) -> tuple[Tensors, int] | None:
        """The call run here and now with its compute time in ns when it is estimated small
        enough for the event loop and the engine is free; None otherwise (then :meth:`run`)."""
        if not self.inline(rows) or not self._busy.acquire(blocking=False):
            return None
        try:
            start = time.perf_counter_ns()
            out = self.engine.run(inputs)
            spent = time.perf_counter_ns() - start
            self._measure(rows, spent)
        finally:
            self._busy.release()
        return out, spent

    async def run(self, inputs: Tensors) -> tuple[Tensors, Timings]:
        rows = _rows(self.engine.metadata, inputs)
        now = self.run_now(inputs, rows)
        if now is not None:
            return now[0], Timings(0, now[1])
        return await self.run_threaded(inputs, rows)

    async def run_threaded(self, inputs: Tensors, rows: int) -> tuple[Tensors, Timings]:
        """The call on the runner's thread (what :meth:`run` does when :meth:`run_now` will
        not run it here)."""
        loop = asyncio.get_running_loop()
        submitted = time.perf_counter_ns()
        return await loop.run_in_executor(self._pool, self._run, inputs, rows, submitted)

    def close(self) -> None:
        self._pool.shutdown(wait=True)
        self.engine.close()


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


def _config_int(mv: ModelVersion, key: str, minimum: int) -> int | None:
    raw = mv.config.get(key)
    if raw is None:
        return None
    try:
        value = int(raw)
    except ValueError:
        value = minimum - 1
    if value < minimum:
        raise ValueError(
            f"model {mv.name!r} version {mv.version}: {key} {quote(raw)} is not an integer "
            f">= {minimum}"
        )
    return value


class BatchingRunner:
    """Calls gathered into batches by a :class:`DynamicBatcher` on its own thread; the
    batcher's per-execution figures go into the version's ``stats`` (on the batcher's thread:
    the fields it writes, executions, queue and compute times, no other thread writes)."""

    def __init__(
        self, engine: Engine, stats: Stats, *, max_queue_delay_us: int, max_queue_size: int
    ) -> None:
        self.engine = engine
        self.stats = stats
        self.batcher = DynamicBatcher(
            engine,
            max_queue_delay_us=max_queue_delay_us,
            max_queue_size=max_queue_size,
            on_stats=self._count,
        )

    def _count(self, b: BatchStats) -> None:
        s = self.stats
        s.execution_count += 1
        if b.rerun:  # its requests are run again alone and counted then
            return
        for q in b.queue_ns:  # per request, as Triton counts them
            s.queue.add(q)
            s.compute_infer.add(b.infer_ns)

    async def run(self, inputs: Tensors) -> tuple[Tensors, Timings | None]:
        return await self.batcher.infer_async(inputs), None

    def close(self) -> None:
        self.batcher.close(drain=True)
        self.engine.close()


# (engine, its version, its statistics) -> the runner calls go through.
RunnerFactory = Callable[[Engine, ModelVersion, Stats], Runner]


def runner_factory(inline_ns: int = 0) -> RunnerFactory:
    """Runners by the version's config: a :class:`BatchingRunner` when it sets
    ``max_queue_delay_us`` (dynamic batching: calls within that many microseconds of each
    other share an execution of up to the model's ``max_batch_size`` rows; ``max_queue_size``
    waiting calls at most, beyond which a call is RESOURCE_EXHAUSTED), else a
    :class:`DirectRunner` (``inline_ns``: see there)."""

    def make(engine: Engine, mv: ModelVersion, stats: Stats) -> Runner:
        delay = _config_int(mv, "max_queue_delay_us", 0)
        if delay is None:
            return DirectRunner(engine, inline_ns)
        queue = _config_int(mv, "max_queue_size", 1)
        return BatchingRunner(
            engine,
            stats,
            max_queue_delay_us=delay,
            max_queue_size=queue if queue is not None else DEFAULT_MAX_QUEUE,
        )

    return make


runner_factory_default = runner_factory()


@dataclass(eq=False)
class Loaded:
    """One loaded version. ``active``: inference calls running on it now; a version taken out
    of service (``retired``) is closed once they have finished."""

    version: ModelVersion
    metadata: ModelMetadata
    runner: Runner
    stats: Stats = field(default_factory=Stats)
    active: int = 0
    last_used: int = 0
    retired: bool = False
    idle: asyncio.Event = field(default_factory=asyncio.Event)
    max_elements: InitVar[int] = MAX_ELEMENTS
    # Made once per version, off the request path: the request's inputs checked against the
    # model (a fast path for well-formed tensors), the version number as text (the monitor's
    # and the response's key) and the model's output names.
    validate: InputValidator = field(init=False)
    version_text: str = field(init=False)
    output_names: frozenset[str] = field(init=False)

    def __post_init__(self, max_elements: int) -> None:
        self.validate = InputValidator(self.metadata, max_elements=max_elements)
        self.version_text = str(self.version.version)
        self.output_names = frozenset(t.name for t in self.metadata.outputs)


@dataclass
class ModelState:
    """A model the service knows: its loaded versions (by version text), the default one, the
    versions its source and traffic policy ask for (``pinned``: the default and a policy's
    challenger; every other loaded version was loaded on demand) and why it is not loaded."""

    name: str
    versions: dict[str, Loaded] = field(default_factory=dict)
    default: str = ""
    pinned: frozenset[str] = frozenset()
    reason: str = ""


@dataclass(frozen=True)
class IndexEntry:
    name: str
    version: str
    state: str  # READY or UNAVAILABLE
    reason: str = ""


def challenger_of(router: Router | None, name: str, default: int) -> int | None:
    """The version a model's traffic policy needs beside its default one (None: no policy, a
    NONE policy, or a challenger that has since become the default)."""
    if router is None:
        return None
    rec = router.policy(name)
    if rec is None or rec.policy.kind == PolicyKind.NONE or rec.policy.challenger == default:
        return None
    return rec.policy.challenger


class DriftSink(Protocol):
    """What serving tells drift monitoring (services/inference/drift_watch.DriftWatch)."""

    def watch(self, model: str, version: int, detector: DriftDetector) -> None: ...

    def unwatch(self, model: str, version: int) -> None: ...

    def record(
        self,
        model: str,
        version: int,
        inputs: Mapping[str, npt.ArrayLike],
        outputs: Mapping[str, npt.ArrayLike],
    ) -> None: ...


class Models:
    """The repository of loaded models over a :class:`ModelSource`, several versions per model.

    :meth:`sync` loads what the source and the traffic policy ask for: the version a request
    without a version gets (the source's ``champion`` alias, else the newest) and, while the
    ``router``'s policy for the model has one, its challenger; versions no longer asked for are
    closed once the calls running on them have finished. The ModelService calls it after every
    alias move, registration or policy change, so serving follows the registry at once.
    ``load`` is a sync that also rebuilds the versions already loaded (Triton's repository
    load); ``unload`` drops every version until the next load.

    A request naming a version gets that version: loaded on demand when it is not (at most
    ``max_on_demand`` such versions per model, the least recently used closed first; 0: a
    version not loaded is NOT_FOUND). A request without one is routed by the ``router`` (when
    given): :meth:`serve`.

    Loading runs on a thread (ONNX Runtime builds its session there); inference runs through
    each version's runner. ``max_elements`` caps every input tensor."""

    def __init__(
        self,
        source: ModelSource,
        *,
        router: Router | None = None,
        engine_factory: EngineFactory = onnx_engine,
        runner_factory: RunnerFactory | None = None,
        max_elements: int = 1 << 24,
        max_on_demand: int = 2,
        recorder: MonitorRecorder | None = None,
        drift: DriftSink | None = None,
    ) -> None:
        if max_on_demand < 0:
            raise ValueError(f"max_on_demand: >= 0, got {max_on_demand}")
        self.source = source
        self.router = router
        self.max_elements = max_elements
        self.max_on_demand = max_on_demand
        self._engine_factory = engine_factory
        self._runner_factory = runner_factory or runner_factory_default
        self.recorder = recorder
        self.drift = drift
        self._models: dict[str, ModelState] = {}
        self._lock = threading.Lock()  # guards _models against the loader threads
        # One load, sync or unload at a time (they are rare; a lock per name would grow with
        # every name a client sends).
        self._loading = asyncio.Lock()
        self._uses = itertools.count(1)
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
                await self.sync(name)
            except Exception as exc:
                log.error("model %r not loaded: %s", name, exc)
        self.ready = True

    async def load(self, name: str) -> Loaded:
        """Load (or reload: every version rebuilt) what ``name``'s source and policy ask for;
        the default version."""
        return await self.sync(name, reload=True)

    def _wanted(self, name: str) -> tuple[ModelVersion, list[ModelVersion]]:
        """The default version and every version to keep loaded (on a thread: a directory
        source reads the disk)."""
        default = self.source.resolve(name, None)
        wanted = [default]
        challenger = challenger_of(self.router, name, default.version)
        if challenger is not None:
            wanted.append(self.source.resolve(name, str(challenger)))
        return default, wanted

    async def sync(self, name: str, *, reload: bool = False) -> Loaded:
        """Load the versions ``name``'s source and policy ask for that are not loaded yet (all
        of them with ``reload``), make the source's default the default, and close the versions
        pinned before and no longer asked for. When a version fails to load nothing changes
        (what was serving keeps serving) and the error, kept as the model's reason, is raised.
        Returns the default version."""
        async with self._loading:
            try:
                default, wanted = await asyncio.to_thread(self._wanted, name)
                with self._lock:
                    state = self._models.get(name)
                    current = dict(state.versions) if state is not None else {}
                fresh: dict[str, Loaded] = {}
                try:
                    for mv in wanted:
                        v = str(mv.version)
                        if reload or v not in current:
                            fresh[v] = await self._build(mv)
                except BaseException:
                    for lv in fresh.values():
                        await asyncio.to_thread(lv.runner.close)
                    raise
            except Exception as exc:
                with self._lock:
                    self._models.setdefault(name, ModelState(name)).reason = str(exc)
                raise
            pinned = frozenset(str(mv.version) for mv in wanted)
            with self._lock:
                state = self._models.setdefault(name, ModelState(name))
                retire = [
                    lv
                    for v, lv in state.versions.items()
                    if v in fresh or (v in state.pinned and v not in pinned)
                ]
                versions = {v: lv for v, lv in state.versions.items() if lv not in retire}
                versions.update(fresh)
                state.versions = versions
                state.default = str(default.version)
                state.pinned = pinned
                state.reason = ""
                result = versions[state.default]
            for v in sorted(fresh, key=int):
                log.info("model %r version %s loaded (%s)", name, v, fresh[v].version.path)
            await self._watch([lv.version for lv in fresh.values()], retire)
            await self._retire(retire)
            return result

    async def _watch(self, fresh: list[ModelVersion], retired: list[Loaded]) -> None:
        """Drift monitoring of the pinned versions against the reference data registered with
        them (a version without reference data is served unmonitored)."""
        if self.drift is None:
            return
        for lv in retired:
            if str(lv.version.version) not in {str(mv.version) for mv in fresh}:
                self.drift.unwatch(lv.version.name, lv.version.version)
        for mv in fresh:
            try:
                detector = await asyncio.to_thread(DriftDetector.for_version, mv)
            except NotFoundError:
                log.info(
                    "model %r version %s: no reference data, no drift monitoring",
                    mv.name,
                    mv.version,
                )
                continue
            except ValueError as exc:
                log.warning(
                    "model %r version %s: drift monitoring off: %s", mv.name, mv.version, exc
                )
                continue
            self.drift.watch(mv.name, mv.version, detector)

    async def _build(self, mv: ModelVersion) -> Loaded:
        engine = await asyncio.to_thread(self._make_engine, mv)
        stats = Stats()
        try:
            runner = self._runner_factory(engine, mv, stats)
        except BaseException:
            engine.close()
            raise
        return Loaded(mv, engine.metadata, runner, stats, max_elements=self.max_elements)

    def _make_engine(self, mv: ModelVersion) -> Engine:
        engine = self._engine_factory(mv)
        engine.warmup()
        return engine

    async def _retire(self, versions: list[Loaded]) -> None:
        """Close versions already taken out of the table once their running calls finished."""
        for lv in versions:
            lv.retired = True
            while lv.active:
                lv.idle.clear()
                await lv.idle.wait()
            await asyncio.to_thread(lv.runner.close)
            log.info("model %r version %s closed", lv.version.name, lv.version.version)

    async def unload(self, name: str) -> None:
        async with self._loading:
            with self._lock:
                state = self._models.get(name)
                if state is None or not state.versions:
                    raise NotFoundError(f"model {name!r} is not loaded")
                old = list(state.versions.values())
                state.versions, state.default, state.reason = {}, "", "unloaded"
                state.pinned = frozenset()
            await self._retire(old)
            log.info("model %r unloaded", name)

    async def _load_on_demand(self, name: str, version: str) -> Loaded:
        """``version`` of a loaded model, loaded now when it is not (NotFoundError naming it
        when the source has no such version or on-demand loading is off)."""
        async with self._loading:
            state = self._state(name)
            found = state.versions.get(version)
            if found is not None:
                return found
            if self.max_on_demand == 0 or not version.isdigit():
                raise NotFoundError(
                    f"model {name!r} has no loaded version {quote(version)} (loaded: "
                    f"{sorted(state.versions, key=int)})"
                )
            mv = await asyncio.to_thread(self.source.resolve, name, version)
            loaded = await self._build(mv)
            loaded.last_used = next(self._uses)
            with self._lock:
                state.versions[version] = loaded
                extra = sorted(
                    (lv.last_used, v) for v, lv in state.versions.items() if v not in state.pinned
                )
                evict = [state.versions.pop(v) for _, v in extra[: -self.max_on_demand]]
            log.info("model %r version %s loaded on demand (%s)", name, version, mv.path)
            await self._retire(evict)
            return loaded

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
    def _state(self, name: str) -> ModelState:
        state = self._models.get(name)
        if state is None or not state.versions:
            raise NotFoundError(f"model {quote(name)} is not loaded")
        return state

    def get(self, name: str, version: str = "") -> Loaded:
        """The loaded ``version`` of ``name`` ("" for its default); NotFoundError naming the
        model or the version otherwise."""
        state = self._state(name)
        loaded = state.versions.get(version or state.default)
        if loaded is None:
            raise NotFoundError(
                f"model {name!r} has no loaded version {quote(version)} (loaded: "
                f"{sorted(state.versions, key=int)})"
            )
        return loaded

    async def lookup(self, name: str, version: str = "") -> Loaded:
        """:meth:`get`, loading a version of a loaded model on demand."""
        state = self._state(name)
        loaded = state.versions.get(version or state.default)
        if loaded is None:
            return await self._load_on_demand(name, version)
        return loaded

    def loaded_now(self, name: str, version: str = "") -> Loaded | None:
        """The loaded version (the default one when ``version`` is empty), None when it is not
        loaded (then :meth:`lookup`: NOT_FOUND, or a load on demand)."""
        state = self._models.get(name)
        if state is None:
            return None
        return state.versions.get(version or state.default)

    def versions(self, name: str) -> list[str]:
        return sorted(self._state(name).versions, key=int)

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
        """Close every loaded version (after the servers and the shadow runs have drained)."""
        with self._lock:
            versions = [lv for s in self._models.values() for lv in s.versions.values()]
            self._models.clear()
        await self._retire(versions)

    # -- inference -------------------------------------------------------------------------
    async def serve(
        self,
        name: str,
        version: str,
        request_id: str,
        inputs: Mapping[str, npt.NDArray[Any]],
        outputs: list[str] | None,
    ) -> tuple[Loaded, Tensors]:
        """One inference request: ``version`` when given (loaded on demand), else the version
        the router picks for ``request_id`` under the model's traffic policy (the default one
        without a router). Under a SHADOW policy the challenger runs the same request after
        the caller's answer is ready, off the caller's path (:meth:`Router.serve`). Returns the
        version that answered and its outputs."""
        if version or self.router is None:
            loaded = self.loaded_now(name, version) or await self.lookup(name, version)
            return loaded, await self.infer(loaded, inputs, outputs, self._role(loaded))
        self._state(name)  # NotFoundError for a model that is not loaded (or was unloaded)
        answers: dict[int, tuple[Loaded, Tensors]] = {}

        async def run(v: int) -> Tensors:
            # The router runs the served version first, then (in a task) the shadow.
            role = "shadow" if answers else ""
            loaded = await self._routed(name, v)
            out = await self.infer(loaded, inputs, outputs, role or self._role(loaded))
            answers.setdefault(v, (loaded, out))
            return out

        decision, _ = await self.router.serve(name, request_id, run)
        return answers[decision.served]

    def _role(self, loaded: Loaded) -> str:
        """``champion`` for the model's default version, ``challenger`` for its policy's
        challenger, "" for a version loaded on demand (the monitor's roles)."""
        state = self._models.get(loaded.version.name)
        v = str(loaded.version.version)
        if state is None or v not in state.pinned:
            return ""
        return "champion" if v == state.default else "challenger"

    async def _routed(self, name: str, version: int) -> Loaded:
        """The version the router picked: loaded, or loaded by a sync (the registry moved an
        alias or the policy changed and the sync that follows has not finished), else on
        demand."""
        v = str(version)
        state = self._state(name)
        loaded = state.versions.get(v)
        if loaded is None:
            await self.sync(name)
            loaded = self._state(name).versions.get(v)
        return loaded if loaded is not None else await self._load_on_demand(name, v)

    async def infer(
        self,
        loaded: Loaded,
        inputs: Mapping[str, npt.NDArray[Any]],
        outputs: list[str] | None,
        role: str = "",
    ) -> Tensors:
        """Validate ``inputs`` against the model (ValueError naming the tensor), run them, and
        return the requested outputs (all when ``outputs`` is empty or None), counting the
        request in the version's statistics and, in ``role``, in the monitor's (a success on
        the event loop's next turn, a failure at once)."""
        if loaded.retired:
            raise UnavailableError(
                f"model {loaded.version.name!r} version {loaded.version.version} was just "
                "taken out of service; retry"
            )
        start = time.perf_counter_ns()
        stats = loaded.stats
        loaded.active += 1
        loaded.last_used = next(self._uses)
        rows = 0
        try:
            meta = loaded.metadata
            for name in outputs or ():
                if name not in loaded.output_names:
                    raise ValueError(
                        f"output tensor {quote(name)}: model {meta.name!r} has outputs "
                        f"{sorted(loaded.output_names)}"
                    )
            arrays = loaded.validate(inputs)
            rows = _rows(meta, arrays)
            runner = loaded.runner
            timings: Timings | None
            if type(runner) is DirectRunner:
                # A small call runs inline without a coroutine of its own; a larger one (or one
                # while the engine is busy) on the runner's thread.
                now = runner.run_now(arrays, rows)
                if now is None:
                    result, timings = await runner.run_threaded(arrays, rows)
                else:
                    result, timings = now[0], Timings(0, now[1])
            else:
                result, timings = await runner.run(arrays)
        except BaseException:
            spent = time.perf_counter_ns() - start
            stats.fail.add(spent)
            self._record(loaded, role, spent, rows, False)
            raise
        finally:
            loaded.active -= 1
            if not loaded.active:
                loaded.idle.set()
        # The call's statistics, monitor and drift records are kept on the loop's next turn:
        # after the answer has been written (the handler's task writes it before it yields)
        # and before any later request is read, so they are off the caller's latency and
        # still counted before the caller's next call is served.
        asyncio.get_running_loop().call_soon(
            self._succeeded,
            loaded,
            role,
            time.perf_counter_ns() - start,
            rows,
            timings,
            arrays,
            result,
        )
        if outputs:
            return {n: result[n] for n in outputs}
        return result

    def _succeeded(
        self,
        loaded: Loaded,
        role: str,
        spent: int,
        rows: int,
        timings: Timings | None,
        arrays: Tensors,
        result: Tensors,
    ) -> None:
        stats = loaded.stats
        stats.success.add(spent)
        if timings is not None:
            stats.queue.add(timings.queue_ns)
            stats.compute_infer.add(timings.compute_ns)
            stats.execution_count += 1
        stats.inference_count += rows
        stats.last_inference_ms = time.time_ns() // 1_000_000
        self._record(loaded, role, spent, rows, True)
        if self.drift is not None:
            try:
                self.drift.record(loaded.version.name, loaded.version.version, arrays, result)
            except Exception as exc:  # monitoring never fails a call
                log.debug("drift: %s", exc)

    def _record(self, loaded: Loaded, role: str, ns: int, rows: int, ok: bool) -> None:
        """One call in the monitor; its failure (e.g. its series limit) never fails a call."""
        if self.recorder is None:
            return
        try:
            self.recorder.record_inference(
                loaded.version.name, loaded.version_text, role, ns / 1e9, rows, ok
            )
        except Exception as exc:
            log.debug("monitor: %s", exc)


def _rows(meta: ModelMetadata, arrays: Tensors) -> int:
    """The batch size of a call (1 for a model that does not batch)."""
    if meta.max_batch_size > 0 and arrays:
        first = next(iter(arrays.values()))
        return int(first.shape[0]) if first.ndim else 1
    return 1
