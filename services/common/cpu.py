"""CPU work of requests: inline on the event loop when it is small, on a bounded pool otherwise.

The rule (docs/architecture.md, "CPU work and the event loop"): a request whose work is at most
``inline_cost`` (in the caller's unit, rows as a rule, measured so that it stays under about a
millisecond) runs on the loop, with no thread hand-off on the latency path; anything larger runs
on one of ``threads`` worker threads. The C++ kernels release the GIL, so large batches run in
parallel with the loop; their Python parts (protobuf <-> numpy conversion) hold it, and the loop
still gets it every switch interval (5 ms), so small calls keep being served meanwhile.

The pool belongs to the service's app object: made with the app, closed (after the server has
drained) by :meth:`close`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import ParamSpec, TypeVar

P = ParamSpec("P")
T = TypeVar("T")


class CpuPool:
    def __init__(self, name: str, threads: int, inline_cost: int) -> None:
        if threads < 1:
            raise ValueError(f"threads must be >= 1 (got {threads})")
        self.inline_cost = inline_cost
        self._pool = ThreadPoolExecutor(threads, thread_name_prefix=f"{name}-cpu")

    def inline(self, cost: int) -> bool:
        """Whether work of this cost runs on the loop."""
        return cost <= self.inline_cost

    async def run(self, cost: int, fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
        """``fn(*args, **kwargs)``: at once when :meth:`inline` says so, else on the pool."""
        if cost <= self.inline_cost:
            return fn(*args, **kwargs)
        return await self.off_loop(fn, *args, **kwargs)

    async def off_loop(self, fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
        """``fn(*args, **kwargs)`` on the pool, whatever its cost."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._pool, lambda: fn(*args, **kwargs))

    async def close(self) -> None:
        """Wait for the work in progress (calls cancelled by their clients included) and end
        the threads."""
        await asyncio.get_running_loop().run_in_executor(None, self._pool.shutdown, True)
