"""services/common/tracing.py without NATS, the JSON log format, and the gateway's tracer."""

from __future__ import annotations

import contextlib
import json
import logging
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from opentelemetry import trace
from tradecore_gateway.generate import Upstream, descriptor_path, envoy_config
from tradecore_services.common import tracing
from tradecore_services.common.server import configure_logging
from tradecore_services.common.settings import ServiceSettings
from tradecore_services.mesh.components import envoy_path
from tradecore_services.mesh.trace_cli import hops, render, tree

TID = "4bf92f3577b34da6a3ce929d0e0e4736"
SID = "00f067aa0ba902b7"


@pytest.fixture
def sampled_all(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("TRADECORE_TRACE_SAMPLE", "1")
    tracing.configure("unit")
    yield
    tracing.shutdown()


@pytest.mark.parametrize(
    "value",
    [
        "",
        "00-" + TID + "-" + SID,  # no flags
        "00-" + TID[:-1] + "-" + SID + "-01",  # short trace id
        "00-" + "0" * 32 + "-" + SID + "-01",  # all-zero trace id
        "00-" + TID + "-" + "0" * 16 + "-01",  # all-zero span id
        "ff-" + TID + "-" + SID + "-01",  # forbidden version
        "00-" + TID + "-" + SID + "-01-extra",  # version 00 has four parts
        "00-" + "g" * 32 + "-" + SID + "-01",  # not hex
    ],
)
def test_malformed_traceparents_are_ignored(value: str) -> None:
    assert tracing.parse_traceparent(value) is None
    assert tracing.parent_of({"traceparent": value}) is None


def test_a_traceparent_round_trips() -> None:
    ctx = tracing.parse_traceparent(f"00-{TID}-{SID}-01")
    assert ctx is not None and ctx.trace_flags.sampled and ctx.is_remote
    assert tracing.format_traceparent(ctx) == f"00-{TID}-{SID}-01"
    unsampled = tracing.parse_traceparent(f"00-{TID}-{SID}-00")
    assert unsampled is not None and not unsampled.trace_flags.sampled


def test_a_call_under_an_unsampled_parent_makes_no_span(sampled_all: None) -> None:
    parent = tracing.parent_of({"traceparent": f"00-{TID}-{SID}-00"})
    span, token = tracing.server_span("svc/M", parent)
    try:
        assert not span.is_recording()
        assert tracing.traceparent() == ""  # nothing to propagate
        with tracing.child_span("below") as child:
            assert child is None
    finally:
        tracing.end_server_span(span, token, "OK")


def test_a_sampled_parent_is_continued(sampled_all: None) -> None:
    span, token = tracing.server_span(
        "svc/M", tracing.parent_of({"x-other": "1", "traceparent": f"00-{TID}-{SID}-01"})
    )
    try:
        ctx = span.get_span_context()
        assert span.is_recording() and f"{ctx.trace_id:032x}" == TID
        assert tracing.traceparent() == f"00-{TID}-{ctx.span_id:016x}-01"
        assert tracing.headers_with_trace({"a": "b"}) == {
            "a": "b",
            "traceparent": tracing.traceparent(),
        }
        with tracing.child_span("below", rows=2) as child:
            assert child is not None and child.is_recording()
    finally:
        tracing.end_server_span(span, token, "INVALID_ARGUMENT", "rid-1")
    assert not trace.get_current_span().is_recording()


def test_a_root_ratio_of_zero_samples_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TRADECORE_TRACE_SAMPLE", "0")
    tracing.configure("unit")
    try:
        span, token = tracing.server_span("svc/M", None)
        assert not span.is_recording()
        tracing.end_server_span(span, token, "OK")
        with tracing.stream_root("publish q") as tp:
            assert tp == ""  # the stream ratio (0.001 by default) decides quotes
    finally:
        tracing.shutdown()


def test_each_kind_of_root_is_sampled_at_its_own_ratio(monkeypatch: pytest.MonkeyPatch) -> None:
    """Calls at TRADECORE_TRACE_SAMPLE, streaming work at TRADECORE_TRACE_STREAM_SAMPLE, each
    alone (the stream's ratio is not multiplied by the calls')."""
    monkeypatch.setenv("TRADECORE_TRACE_SAMPLE", "0.25")
    monkeypatch.setenv("TRADECORE_TRACE_STREAM_SAMPLE", "1")
    tracing.configure("unit")
    try:
        n, sampled = 4000, 0
        for _ in range(n):
            span, token = tracing.server_span("svc/M", None)
            sampled += span.is_recording()
            tracing.end_server_span(span, token, "OK")
            assert not trace.get_current_span().is_recording()
        # binomial(4000, 0.25): sd 27.4; 6 sd either side
        assert abs(sampled - n * 0.25) < 6 * (n * 0.25 * 0.75) ** 0.5, sampled
        for _ in range(50):
            with tracing.stream_root("publish q") as tp:
                assert tp.endswith("-01")
        roots = 0
        for _ in range(400):
            with tracing.root_span("background") as root:
                roots += root.is_recording()
        assert 40 < roots < 160, roots  # binomial(400, 0.25): mean 100, sd 8.7
    finally:
        tracing.shutdown()


@pytest.mark.parametrize("name", ["TRADECORE_TRACE_SAMPLE", "TRADECORE_TRACE_STREAM_SAMPLE"])
@pytest.mark.parametrize("value", ["2", "-0.1", "often"])
def test_bad_sample_ratios_name_the_variable(
    monkeypatch: pytest.MonkeyPatch, name: str, value: str
) -> None:
    monkeypatch.setenv(name, value)
    with pytest.raises(ValueError, match=name):
        tracing.configure("unit")


def test_bad_log_format_names_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TRADECORE_LOG_FORMAT", "xml")
    with pytest.raises(ValueError, match="TRADECORE_LOG_FORMAT"):
        ServiceSettings.from_env("unit", port=1, metrics_port=2)


@contextlib.contextmanager
def logging_to(settings: ServiceSettings) -> Iterator[None]:
    """The service's logging configured for the block, the previous handlers back after it."""
    root = logging.getLogger()
    saved, level = root.handlers[:], root.level
    try:
        configure_logging(settings)
        yield
    finally:
        for h in root.handlers:
            h.close()
        root.handlers[:] = saved
        root.setLevel(level)


def test_json_logs_carry_the_ids_of_the_call(tmp_path: Path, sampled_all: None) -> None:
    log_file = tmp_path / "unit.log"
    settings = ServiceSettings(service="unit", log_file=str(log_file), log_format="json")
    with logging_to(settings):
        log = logging.getLogger("tradecore.unit")
        log.info("outside a call")
        span, token = tracing.server_span("svc/M", tracing.parent_of(
            {"traceparent": f"00-{TID}-{SID}-01"}))  # fmt: skip
        rid = tracing.current_request_id.set("rid-7")
        try:
            log.warning("inside %s", "a call")
            try:
                raise RuntimeError("boom")
            except RuntimeError:
                log.exception("failed")
        finally:
            tracing.current_request_id.reset(rid)
            tracing.end_server_span(span, token, "OK")
    lines: list[dict[str, Any]] = [json.loads(x) for x in log_file.read_text().splitlines()]
    assert [x["message"] for x in lines] == ["outside a call", "inside a call", "failed"]
    assert "request_id" not in lines[0] and "trace_id" not in lines[0]
    assert lines[1]["request_id"] == "rid-7" and lines[1]["trace_id"] == TID
    assert lines[1]["level"] == "WARNING" and lines[1]["service"] == "unit"
    assert lines[1]["logger"] == "tradecore.unit" and len(lines[1]["span_id"]) == 16
    assert "RuntimeError: boom" in lines[2]["exc"]


def test_text_logs_end_with_the_ids(tmp_path: Path, sampled_all: None) -> None:
    log_file = tmp_path / "unit.log"
    with logging_to(ServiceSettings(service="unit", log_file=str(log_file))):
        rid = tracing.current_request_id.set("rid-8")
        logging.getLogger("tradecore.unit").info("hello")
        tracing.current_request_id.reset(rid)
        logging.getLogger("tradecore.unit").info("plain")
    first, second = log_file.read_text().splitlines()
    assert first.endswith("tradecore.unit: hello [request_id=rid-8]")
    assert second.endswith("tradecore.unit: plain")


def span(sid: str, parent: str, service: str, start: int, name: str = "s") -> dict[str, Any]:
    return {"span_id": sid, "parent_id": parent, "service": service, "start_ns": start,
            "end_ns": start + 10, "name": name}  # fmt: skip


def test_the_tree_puts_children_under_parents_and_measures_hops() -> None:
    spans = [
        span("c", "b", "risk", 3_000_000),
        span("b", "a", "execution", 1_000),
        span("a", "gw", "execution", 0),  # parent not stored: a root
        span("d", "a", "execution", 500),
    ]
    assert [(d, s["span_id"]) for d, s in tree(spans)] == [(0, "a"), (1, "d"), (1, "b"), (2, "c")]
    assert hops(spans) == {"c": pytest.approx(2.999)}


def gateway(monkeypatch: pytest.MonkeyPatch, **env: str) -> dict[str, Any]:
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    cfg: dict[str, Any] = envoy_config(
        descriptor=descriptor_path(),
        upstreams={"tradecore.pricing.v1.PricingService": Upstream("127.0.0.1", 50051)},
    )
    return cfg


def _hcm(cfg: dict[str, Any]) -> dict[str, Any]:
    listener = cfg["static_resources"]["listeners"][0]
    return listener["filter_chains"][0]["filters"][0]["typed_config"]  # type: ignore[no-any-return]


@pytest.mark.parametrize("endpoint", ["", "http://127.0.0.1:4317"])
def test_the_gateway_traces_and_envoy_accepts_it(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, endpoint: str
) -> None:
    monkeypatch.delenv("TRADECORE_TRACE_SAMPLE", raising=False)
    cfg = gateway(monkeypatch, TRADECORE_OTLP_ENDPOINT=endpoint)
    tracing_cfg = _hcm(cfg)["tracing"]
    assert tracing_cfg["provider"]["name"] == "envoy.tracers.opentelemetry"
    assert tracing_cfg["random_sampling"]["value"] == pytest.approx(tracing.DEFAULT_SAMPLE * 100)
    # spans go to the collector, else to the service behind the health route, which keeps them
    receiver = tracing_cfg["provider"]["typed_config"]["grpc_service"]["envoy_grpc"]
    assert receiver["cluster_name"] == (
        "otlp" if endpoint else "tradecore_pricing_v1_PricingService"
    )
    clusters = {c["name"]: c for c in cfg["static_resources"]["clusters"]}
    assert ("otlp" in clusters) == bool(endpoint)
    if endpoint:
        address = clusters["otlp"]["load_assignment"]["endpoints"][0]["lb_endpoints"][0]
        assert address["endpoint"]["address"]["socket_address"]["port_value"] == 4317
    host = _hcm(cfg)["route_config"]["virtual_hosts"][0]
    assert {"key": "traceparent", "value": "%REQ(traceparent)%"} in [
        h["header"] for h in host["response_headers_to_add"]
    ]
    path = tmp_path / "envoy.json"
    path.write_text(json.dumps(cfg))
    out = subprocess.run(
        [envoy_path(), "--mode", "validate", "-c", str(path)],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-2000:]


@pytest.mark.parametrize(
    "env, needle",
    [
        ({"TRADECORE_OTLP_ENDPOINT": "http://collector"}, "TRADECORE_OTLP_ENDPOINT"),
        ({"TRADECORE_TRACE_SAMPLE": "1.5"}, "TRADECORE_TRACE_SAMPLE"),
    ],
)
def test_bad_gateway_tracing_settings_name_the_variable(
    monkeypatch: pytest.MonkeyPatch, env: dict[str, str], needle: str
) -> None:
    with pytest.raises(ValueError, match=needle):
        gateway(monkeypatch, **env)


def test_render_shows_the_tree_and_cuts_long_attributes() -> None:
    spans = [
        {**span("a", "", "gateway", 0, "ingress"), "attributes": {"empty": "", "none": "-",
         "tag": "x" * 400}, "status": "UNSET"},
        {**span("b", "a", "execution", 2_000_000, "svc/M"), "attributes": {"rows": 3},
         "status": "ERROR", "message": "INVALID_ARGUMENT"},
    ]  # fmt: skip
    lines = render("t" * 32, spans).splitlines()
    assert lines[0] == f"trace {'t' * 32}: 2 spans, services execution, gateway, 2.000 ms"
    gw, svc = lines[2], lines[3]
    assert "empty=" not in gw and "none=" not in gw and gw.endswith("…]")
    assert len(gw) < 250
    assert svc.split()[:4] == ["2.000", "0.000", "2.000", "execution"]
    assert svc.endswith("  svc/M  [rows=3 ERROR INVALID_ARGUMENT]")
