"""The RiskService's stateless methods without a server: each takes the request message (and
the call's remaining deadline), checks and converts it (convert.py), runs the library on the
loop or the CPU pool by its cost, and returns the response message."""

from __future__ import annotations

from dataclasses import dataclass

from ..common.cpu import CpuPool

#: Work units (option-paths, position-scenarios) a call may run on the event loop.
INLINE_COST = 20_000


@dataclass(frozen=True)
class Caps:
    """Hard limits per call (TRADECORE_RISK_MAX_*): beyond them a request is INVALID_ARGUMENT
    naming the field."""

    max_paths: int = 10_000_000
    max_positions: int = 100_000
    max_books: int = 10_000


class Analytics:
    def __init__(self, cpu: CpuPool, caps: Caps) -> None:
        self.cpu = cpu
        self.caps = caps
