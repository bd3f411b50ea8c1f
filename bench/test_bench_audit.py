"""Audit-trail benchmarks: appends per second with and without an fsync per record, the cost of
a signed checkpoint and of an inclusion proof, and the verify rate.

Run: ``python -m pytest bench/test_bench_audit.py -q -s`` (figures printed, and in the
pytest-benchmark JSON of ``make bench``)."""

from __future__ import annotations

import itertools
import time
from pathlib import Path

import pytest
from tradecore.audit import AuditLog, Signer, verify

PAYLOAD = (
    b'{"account":"ACC1","client_order_id":"c-000001","symbol":"AAPL","side":"BUY",'
    b'"quantity":100,"type":"LIMIT","limit_price":187.25,"time_in_force":"DAY"}'
)
VERIFY_RECORDS = 20_000


@pytest.fixture(scope="module")
def signer() -> Signer:
    return Signer.generate()


def _append_rate(benchmark: pytest.FixtureRequest, log: AuditLog, batch: int) -> float:
    counter = itertools.count()

    def run() -> None:
        for _ in range(batch):
            log.append("order.submitted", PAYLOAD, next(counter), "execution")

    benchmark.pedantic(run, rounds=5, iterations=1)  # type: ignore[attr-defined]
    rate = batch / benchmark.stats.stats.median  # type: ignore[attr-defined]
    benchmark.extra_info["appends_per_s"] = rate  # type: ignore[attr-defined]
    return float(rate)


def test_append_without_fsync(benchmark: pytest.FixtureRequest, tmp_path: Path) -> None:
    with AuditLog.open(tmp_path, fsync=False) as log:
        rate = _append_rate(benchmark, log, 5_000)
    print(f"\naudit append, fsync=False: {rate:,.0f} records/s ({len(PAYLOAD)}-byte payload)")


def test_append_with_fsync_per_record(benchmark: pytest.FixtureRequest, tmp_path: Path) -> None:
    with AuditLog.open(tmp_path, fsync=True) as log:
        rate = _append_rate(benchmark, log, 200)
    print(f"\naudit append, fsync per record: {rate:,.0f} records/s")


@pytest.fixture(scope="module")
def big_log(tmp_path_factory: pytest.TempPathFactory, signer: Signer) -> Path:
    path = tmp_path_factory.mktemp("audit")
    with AuditLog.open(path, signer, fsync=False) as log:
        for i in range(VERIFY_RECORDS):
            log.append("order.submitted", PAYLOAD, i, "execution")
            if (i + 1) % 5_000 == 0:
                log.checkpoint()
    return path


def test_verify_rate(benchmark: pytest.FixtureRequest, big_log: Path, signer: Signer) -> None:
    report = benchmark.pedantic(  # type: ignore[attr-defined]
        verify, args=(big_log, signer.public_key), rounds=3, iterations=1
    )
    assert report.ok and report.records == VERIFY_RECORDS
    rate = VERIFY_RECORDS / benchmark.stats.stats.median  # type: ignore[attr-defined]
    benchmark.extra_info["records_per_s"] = rate  # type: ignore[attr-defined]
    print(f"\naudit verify: {rate:,.0f} records/s ({report.checkpoints} checkpoints)")


def test_checkpoint_and_proof_cost(
    benchmark: pytest.FixtureRequest, big_log: Path, signer: Signer
) -> None:
    with AuditLog.open(big_log, signer, fsync=False) as log:
        benchmark.pedantic(log.checkpoint, rounds=20, iterations=1)  # type: ignore[attr-defined]
        ckp_ms = benchmark.stats.stats.median * 1e3  # type: ignore[attr-defined]
        t0 = time.perf_counter()
        proof = log.inclusion_proof(VERIFY_RECORDS // 2)
        proof_ms = (time.perf_counter() - t0) * 1e3
    assert len(proof) == 15
    print(
        f"\naudit checkpoint (sign + fsync) at {VERIFY_RECORDS} records: {ckp_ms:.2f} ms; "
        f"inclusion proof: {proof_ms:.1f} ms"
    )
