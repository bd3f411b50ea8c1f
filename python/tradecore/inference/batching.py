"""Dynamic batching: requests for one model gathered into batches on the model's own thread.

Each :class:`DynamicBatcher` owns one engine and one worker thread. Callers submit a request
(inputs by name, batch dimension first); the worker takes the oldest waiting request, adds the
requests queued behind it while their rows fit ``max_batch_size`` (waiting up to
``max_queue_delay_us`` for more when the batch is not full: 0 runs what is queued at once),
concatenates each input on dimension 0, runs the engine once (ONNX Runtime releases the GIL
while it computes) and hands each caller its own rows of every output.

A batch that fails is run again one request at a time, so only the request at fault fails; a
request still queued at its deadline fails with TimeoutError without running; a full queue
refuses a request at once with ResourceExhaustedError. After every execution the ``on_stats``
hook (if any) receives a :class:`BatchStats` (queue waits, compute times, the batch's rows and
requests), which the InferenceService turns into Triton's metrics.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping
from concurrent.futures import Future
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from tradecore.errors import PreconditionError, ResourceExhaustedError
from tradecore.inference.types import MAX_ELEMENTS, Engine, InputValidator, ModelMetadata, Tensors

log = logging.getLogger(__name__)

DEFAULT_MAX_QUEUE = 1024


@dataclass(frozen=True)
class BatchStats:
    """One execution of the model, in Triton's vocabulary: ``requests`` inference requests
    (``nv_inference_request_success`` when ``ok``, else failures) of ``rows`` inferences in all
    (``nv_inference_count``) in one execution (``nv_inference_exec_count``).
    ``queue_ns``: each request's wait from submission to the start of its batch
    (``nv_inference_queue_duration_us``); ``input_ns``/``infer_ns``/``output_ns``: the
    concatenation, the engine's run and the split (``nv_inference_compute_{input,infer,
    output}_duration_us``, to be added once per request as Triton does). ``rerun``: the batch
    failed and each of its requests is run again alone (and reported again): count this
    execution, but not its requests as failures."""

    model: str
    version: str
    requests: int
    rows: int
    queue_ns: tuple[int, ...]
    input_ns: int
    infer_ns: int
    output_ns: int
    ok: bool
    rerun: bool = False


class _Request:
    __slots__ = ("deadline", "enqueued_ns", "future", "inputs", "rows")

    def __init__(self, inputs: Tensors, rows: int, deadline: float | None) -> None:
        self.inputs = inputs
        self.rows = rows
        self.deadline = deadline  # time.monotonic() seconds, or None
        self.enqueued_ns = time.monotonic_ns()
        self.future: Future[Tensors] = Future()


class DynamicBatcher:
    """Batches concurrent requests for one engine (see the module docstring).

    ``max_batch_size``: rows gathered into one execution (default and ceiling: the model's
    own; a model that does not batch runs each request alone). A request larger than it runs
    alone. ``max_queue_delay_us``: how long the worker waits for more requests once it holds
    one and the batch is not full. ``max_queue_size``: requests waiting (not running) before
    submissions are refused. ``timeout_s``: the default per-request deadline (None: none).
    ``on_stats``: called on the worker thread after each execution; its exceptions are logged
    and ignored."""

    def __init__(
        self,
        engine: Engine,
        *,
        max_batch_size: int | None = None,
        max_queue_delay_us: int = 0,
        max_queue_size: int = DEFAULT_MAX_QUEUE,
        timeout_s: float | None = None,
        max_elements: int = MAX_ELEMENTS,
        on_stats: Callable[[BatchStats], None] | None = None,
    ) -> None:
        meta = engine.metadata
        model_max = meta.max_batch_size
        if max_batch_size is None:
            max_batch_size = model_max
        elif max_batch_size < 0:
            raise ValueError(f"max_batch_size: at least 0, got {max_batch_size}")
        elif max_batch_size > model_max:
            raise ValueError(
                f"max_batch_size: at most the model's {model_max}, got {max_batch_size}"
            )
        if max_queue_delay_us < 0:
            raise ValueError(f"max_queue_delay_us: at least 0, got {max_queue_delay_us}")
        if max_queue_size < 1:
            raise ValueError(f"max_queue_size: at least 1, got {max_queue_size}")
        if timeout_s is not None and not timeout_s > 0:
            raise ValueError(f"timeout_s: positive or None, got {timeout_s}")
        self._engine = engine
        self._meta = meta
        self._max_batch = max_batch_size
        self._delay_s = max_queue_delay_us / 1e6
        self._max_queue = max_queue_size
        self._timeout_s = timeout_s
        self._validate = InputValidator(meta, max_elements=max_elements)
        self._on_stats = on_stats
        self._queue: deque[_Request] = deque()
        self._cond = threading.Condition()
        self._closed = False
        self._drain = True
        self._thread = threading.Thread(
            target=self._work, name=f"batcher-{meta.name}-{meta.version}", daemon=True
        )
        self._thread.start()

    @property
    def metadata(self) -> ModelMetadata:
        return self._meta

    @property
    def max_batch_size(self) -> int:
        return self._max_batch

    def queued(self) -> int:
        """Requests waiting for the worker (not counting the batch it is running)."""
        with self._cond:
            return len(self._queue)

    # ------------------------------------------------------------------ submitting

    def submit(
        self, inputs: Mapping[str, npt.ArrayLike], *, timeout_s: float | None = None
    ) -> Future[Tensors]:
        """Queue a request: its outputs by name arrive on the returned future.

        Validation happens here, in the caller's thread (ValueError naming the tensor); a
        full queue raises ResourceExhaustedError and a closed batcher PreconditionError. The
        future fails with TimeoutError when the request is still queued at its deadline
        (``timeout_s`` or the batcher's default), or with the engine's error when its run
        fails."""
        checked = self._validate(inputs)
        rows = 1
        if self._meta.max_batch_size > 0 and checked:
            rows = int(next(iter(checked.values())).shape[0])
        limit = self._timeout_s if timeout_s is None else timeout_s
        if limit is not None and not limit > 0:
            raise ValueError(f"timeout_s: positive or None, got {limit}")
        req = _Request(checked, rows, None if limit is None else time.monotonic() + limit)
        with self._cond:
            if self._closed:
                raise PreconditionError(
                    f"model {self._meta.name!r} version {self._meta.version}: the batcher "
                    "is shut down"
                )
            if len(self._queue) >= self._max_queue:
                raise ResourceExhaustedError(
                    f"model {self._meta.name!r} version {self._meta.version}: queue full "
                    f"({self._max_queue} requests waiting); retry later"
                )
            self._queue.append(req)
            self._cond.notify()
        req.future.add_done_callback(lambda f: self._withdraw(req) if f.cancelled() else None)
        return req.future

    def _withdraw(self, req: _Request) -> None:
        """Drop a cancelled request from the queue, so an abandoned request (a caller that
        timed out, an asyncio task that was cancelled) holds no place in it."""
        # ValueError: the worker has taken it already.
        with self._cond, contextlib.suppress(ValueError):
            self._queue.remove(req)

    def infer(
        self, inputs: Mapping[str, npt.ArrayLike], *, timeout_s: float | None = None
    ) -> Tensors:
        """Submit and wait (see :meth:`submit`); TimeoutError at the deadline."""
        limit = self._timeout_s if timeout_s is None else timeout_s
        future = self.submit(inputs, timeout_s=limit)
        try:
            return future.result(timeout=limit)
        except TimeoutError:
            future.cancel()
            raise self._timed_out(limit) from None

    async def infer_async(
        self, inputs: Mapping[str, npt.ArrayLike], *, timeout_s: float | None = None
    ) -> Tensors:
        """Submit and await the outputs without blocking the event loop; TimeoutError at the
        deadline (a request not yet running is then dropped from the queue)."""
        limit = self._timeout_s if timeout_s is None else timeout_s
        future = self.submit(inputs, timeout_s=limit)
        waiting = asyncio.wrap_future(future)
        try:
            return await asyncio.wait_for(waiting, limit)
        except TimeoutError:
            raise self._timed_out(limit) from None

    def _timed_out(self, limit: float | None) -> TimeoutError:
        return TimeoutError(
            f"model {self._meta.name!r} version {self._meta.version}: no result within {limit} s"
        )

    # ------------------------------------------------------------------ lifecycle

    def close(self, *, drain: bool = True, timeout_s: float | None = None) -> None:
        """Stop taking requests; ``drain`` runs those already queued, otherwise they fail with
        PreconditionError. Waits for the worker thread (up to ``timeout_s``). The engine stays
        open: its owner closes it."""
        with self._cond:
            self._closed = True
            self._drain = drain
            self._cond.notify_all()
        if threading.current_thread() is not self._thread:
            self._thread.join(timeout_s)

    def __enter__(self) -> DynamicBatcher:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------------ the worker

    def _take(self) -> list[_Request] | None:
        """The next batch, or None when closed and nothing is left to run."""
        with self._cond:
            while not self._queue:
                if self._closed:
                    return None
                self._cond.wait()
            if self._closed and not self._drain:
                self._fail_queued()
                return None
            batch = [self._queue.popleft()]
            rows = batch[0].rows
            if self._max_batch == 0:
                return batch
            until = time.monotonic() + self._delay_s
            while rows < self._max_batch:
                if self._queue:
                    nxt = self._queue[0]
                    if rows + nxt.rows > self._max_batch:
                        break
                    batch.append(self._queue.popleft())
                    rows += nxt.rows
                    continue
                left = until - time.monotonic()
                if left <= 0 or self._closed:
                    break
                self._cond.wait(left)
            return batch

    def _fail_queued(self) -> None:
        error = PreconditionError(
            f"model {self._meta.name!r} version {self._meta.version}: the batcher shut down "
            "before the request ran"
        )
        while self._queue:
            req = self._queue.popleft()
            if req.future.set_running_or_notify_cancel():
                req.future.set_exception(error)

    def _work(self) -> None:
        while True:
            batch = self._take()
            if batch is None:
                return
            now = time.monotonic()
            live: list[_Request] = []
            for req in batch:
                if not req.future.set_running_or_notify_cancel():
                    continue  # the caller gave up on it
                if req.deadline is not None and now >= req.deadline:
                    req.future.set_exception(
                        TimeoutError(
                            f"model {self._meta.name!r} version {self._meta.version}: the "
                            "request waited in the queue past its deadline"
                        )
                    )
                    continue
                live.append(req)
            if live:
                self._execute(live)

    def _execute(self, batch: list[_Request]) -> None:
        start = time.monotonic_ns()
        queue_ns = tuple(start - r.enqueued_ns for r in batch)
        try:
            if len(batch) == 1:
                feed = batch[0].inputs
            else:
                feed = {
                    t.name: np.concatenate([r.inputs[t.name] for r in batch])
                    for t in self._meta.inputs
                }
            t_in = time.monotonic_ns()
            out = self._engine.run(feed)
            t_run = time.monotonic_ns()
            parts = self._split(out, batch)
        except BaseException as exc:  # the engine's error goes to the callers, not the thread
            rerun = len(batch) > 1 and isinstance(exc, Exception)
            self._report(batch, queue_ns, 0, time.monotonic_ns() - start, 0, ok=False, rerun=rerun)
            if rerun:
                # One request may have failed them all: run each alone so only it fails.
                for req in batch:
                    self._execute([req])
                return
            for req in batch:
                req.future.set_exception(exc)
            if not isinstance(exc, Exception):
                raise
            return
        t_out = time.monotonic_ns()
        for req, part in zip(batch, parts, strict=True):
            req.future.set_result(part)
        self._report(batch, queue_ns, t_in - start, t_run - t_in, t_out - t_run, ok=True)

    def _split(self, out: Tensors, batch: list[_Request]) -> list[Tensors]:
        if len(batch) == 1:
            return [out]
        total = sum(r.rows for r in batch)
        for name, arr in out.items():
            if arr.ndim == 0 or arr.shape[0] != total:
                raise RuntimeError(
                    f"model {self._meta.name!r}: output tensor {name!r} has shape "
                    f"{list(arr.shape)}, not the batch's {total} rows first"
                )
        parts: list[Tensors] = []
        lo = 0
        for req in batch:
            hi = lo + req.rows
            parts.append({name: arr[lo:hi] for name, arr in out.items()})
            lo = hi
        return parts

    def _report(
        self,
        batch: list[_Request],
        queue_ns: tuple[int, ...],
        input_ns: int,
        infer_ns: int,
        output_ns: int,
        *,
        ok: bool,
        rerun: bool = False,
    ) -> None:
        if self._on_stats is None:
            return
        stats = BatchStats(
            model=self._meta.name,
            version=self._meta.version,
            requests=len(batch),
            rows=sum(r.rows for r in batch),
            queue_ns=queue_ns,
            input_ns=input_ns,
            infer_ns=infer_ns,
            output_ns=output_ns,
            ok=ok,
            rerun=rerun,
        )
        try:
            self._on_stats(stats)
        except Exception:
            log.exception("on_stats hook failed for model %s", self._meta.name)


__all__ = ["DEFAULT_MAX_QUEUE", "BatchStats", "DynamicBatcher"]
