"""Service settings from the environment: defaults, checked values, errors that name the
variable."""

from __future__ import annotations

import pytest
from tradecore_services.common.settings import ServiceSettings, env_int


def test_env_int(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("TRADECORE_MD_RETENTION_DAYS", raising=False)
    assert env_int("TRADECORE_MD_RETENTION_DAYS", 30, minimum=0) == 30
    monkeypatch.setenv("TRADECORE_MD_RETENTION_DAYS", "0")
    assert env_int("TRADECORE_MD_RETENTION_DAYS", 30, minimum=0) == 0
    monkeypatch.setenv("TRADECORE_MD_RETENTION_DAYS", "-1")
    with pytest.raises(ValueError, match=r"TRADECORE_MD_RETENTION_DAYS must be >= 0 \(got -1\)"):
        env_int("TRADECORE_MD_RETENTION_DAYS", 30, minimum=0)
    monkeypatch.setenv("TRADECORE_MD_RETENTION_DAYS", "week")
    with pytest.raises(ValueError, match="TRADECORE_MD_RETENTION_DAYS must be an integer"):
        env_int("TRADECORE_MD_RETENTION_DAYS", 30, minimum=0)


def test_service_settings_check_ports(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("METRICS_PORT", "CLICKHOUSE_DSN"):
        monkeypatch.delenv(f"TRADECORE_{name}", raising=False)
    monkeypatch.setenv("TRADECORE_PORT", "70000")
    with pytest.raises(ValueError, match=r"port must be in 0\.\.65535"):
        ServiceSettings.from_env("x", port=1, metrics_port=2)
    monkeypatch.setenv("TRADECORE_PORT", "abc")
    with pytest.raises(ValueError, match="TRADECORE_PORT must be an integer"):
        ServiceSettings.from_env("x", port=1, metrics_port=2)
    monkeypatch.delenv("TRADECORE_PORT")
    s = ServiceSettings.from_env("x", port=1, metrics_port=2)
    assert (s.port, s.metrics_port) == (1, 2)
    assert s.clickhouse_dsn.startswith("chdb://") and s.clickhouse_dsn.endswith("/x")
