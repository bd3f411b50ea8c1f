"""Benchmark suites: each compares Tradecore with a peer measured in the same run.

Run: ``make bench`` (= ``python -m pytest bench --benchmark-json bench/results/latest.json``);
``python bench/summarize.py bench/results/latest.json`` prints the ratios.
"""

from __future__ import annotations

import pytest


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "peer: the comparison implementation of a group")
