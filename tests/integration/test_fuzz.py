"""Fuzz and bad-input suite over every RPC and every JSON route, on a mesh of its own.

Every method in the descriptor set gets hypothesis-generated messages (extreme floats, long and
odd strings, unknown enum values, nested messages) over gRPC and random bytes as a request
body; every HTTP route gets the JSON bad-input matrix (malformed documents, unknown fields,
nulls, wrong types, long values, unknown query parameters). No answer may be INTERNAL, UNKNOWN
or a hang over gRPC, or a 5xx / an error with 200 over JSON; a finite request that succeeds has
finite numbers in its answer; error messages stay short; and afterwards every component is
still healthy with no restarts.

Counts scale with ``TRADECORE_FUZZ_EXAMPLES`` (a multiplier, default 1: the CI run). The
pricing and market-data RPCs, fuzzed longest, get 40 messages (12 for a stream) and 25 byte
payloads (6) each at scale 1; the others (execution, risk, inference) a quarter of that. Every
message sent is counted; the last test prints the total and, with
``TRADECORE_FUZZ_MIN_MESSAGES``, fails below it; ``TRADECORE_FUZZ_REPORT`` names a JSON file for
the counts and outcomes. docs/reliability.md has the ≥ 10,000-message run.
"""

from __future__ import annotations

import json
import math
import os
import time
import urllib.error
import urllib.parse
import urllib.request
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import pytest
from google.api import annotations_pb2, http_pb2
from google.protobuf import descriptor_pb2
from google.protobuf.descriptor import Descriptor, FieldDescriptor, MethodDescriptor
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from tradecore_api.execution.v1 import execution_pb2 as exec_pb
from tradecore_api.inference import grpc_service_pb2 as kserve_pb
from tradecore_api.inference.v1 import models_pb2 as models_pb
from tradecore_api.marketdata.v1 import marketdata_pb2 as md_pb
from tradecore_api.marketdata.v1 import marketdata_pb2_grpc as md_grpc
from tradecore_api.pricing.v1 import pricing_pb2 as pricing_pb
from tradecore_api.risk.v1 import risk_pb2 as risk_pb
from tradecore_services.registry import SERVICES

from tests.integration.conftest import running_mesh
from tests.mesh import Mesh

pytestmark = pytest.mark.integration

MAX_MESSAGE = 2048  # longest error message a client may get (no echo of long values)
BAD_CODES = {grpc.StatusCode.INTERNAL, grpc.StatusCode.UNKNOWN}
UNARY_TIMEOUT_S = 20.0  # a unary call that takes longer is a hang
STREAM_TIMEOUT_S = 1.0  # server streams may wait for data: a deadline is fine, a crash is not
# The fuzzed longest (as many examples as at scale 1 before the others were added) ...
FILES = (pricing_pb.DESCRIPTOR, md_pb.DESCRIPTOR)
# ... and the rest of the mesh's RPCs, a quarter as many at the same scale.
MORE_FILES = (exec_pb.DESCRIPTOR, risk_pb.DESCRIPTOR, models_pb.DESCRIPTOR, kserve_pb.DESCRIPTOR)
SCALE = float(os.environ.get("TRADECORE_FUZZ_EXAMPLES", "1"))
# Messages sent, by outcome: "grpc <code>", "json <status>".
SENT: Counter[str] = Counter()


def examples(m: Method, unary: int, stream: int) -> int:
    """Examples for ``m``: ``unary`` or ``stream`` at scale 1, a quarter for MORE_FILES."""
    base = stream if m.streaming else unary
    if m.desc.containing_service.file not in FILES:
        base = max(1, base // 4)
    return max(1, round(base * SCALE))


@dataclass(frozen=True)
class Method:
    service: str
    desc: MethodDescriptor

    @property
    def path(self) -> str:
        return f"/{self.service}/{self.desc.name}"

    @property
    def streaming(self) -> bool:
        return bool(self.desc.server_streaming)

    @property
    def request(self) -> Descriptor:
        return self.desc.input_type

    def http_rule(self) -> http_pb2.HttpRule | None:
        proto = descriptor_pb2.MethodDescriptorProto()
        self.desc.CopyToProto(proto)
        if not proto.options.HasExtension(annotations_pb2.http):
            return None
        return proto.options.Extensions[annotations_pb2.http]


METHODS = [
    Method(svc.full_name, m)
    for f in (*FILES, *MORE_FILES)
    for svc in f.services_by_name.values()
    for m in svc.methods
]
IDS = [m.path for m in METHODS]


# ----------------------------------------------------------------------------- message strategies

_FLOATS = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([0.0, -0.0, 1e-300, 5e-324, 1e308, -1e308, 1e6, 1e9, 1e18, -1.0, 0.5, 100.0]),
)
_STRINGS = st.one_of(
    st.text(max_size=12),
    st.sampled_from(
        ["", "GOOG", "x" * 5000, "a.b", "*", ">", " x", "\x00", "../../etc/passwd", "ünï", "1e9"]
    ),
)
_INT_RANGES = {
    FieldDescriptor.TYPE_INT32: (-(2**31), 2**31 - 1),
    FieldDescriptor.TYPE_SINT32: (-(2**31), 2**31 - 1),
    FieldDescriptor.TYPE_SFIXED32: (-(2**31), 2**31 - 1),
    FieldDescriptor.TYPE_INT64: (-(2**63), 2**63 - 1),
    FieldDescriptor.TYPE_SINT64: (-(2**63), 2**63 - 1),
    FieldDescriptor.TYPE_SFIXED64: (-(2**63), 2**63 - 1),
    FieldDescriptor.TYPE_UINT32: (0, 2**32 - 1),
    FieldDescriptor.TYPE_FIXED32: (0, 2**32 - 1),
    FieldDescriptor.TYPE_UINT64: (0, 2**64 - 1),
    FieldDescriptor.TYPE_FIXED64: (0, 2**64 - 1),
}


def _ints(lo: int, hi: int) -> st.SearchStrategy[int]:
    edges = [v for v in (0, 1, -1, 2, 10, 1000, 100_000, 10**9, lo, hi) if lo <= v <= hi]
    return st.one_of(st.sampled_from(edges), st.integers(lo, hi))


def _scalar(f: FieldDescriptor) -> st.SearchStrategy[Any]:
    t = f.type
    if t in (FieldDescriptor.TYPE_DOUBLE, FieldDescriptor.TYPE_FLOAT):
        return _FLOATS
    if t in _INT_RANGES:
        return _ints(*_INT_RANGES[t])
    if t == FieldDescriptor.TYPE_BOOL:
        return st.booleans()
    if t == FieldDescriptor.TYPE_STRING:
        return _STRINGS
    if t == FieldDescriptor.TYPE_BYTES:
        return st.binary(max_size=64)
    if t == FieldDescriptor.TYPE_ENUM:
        n = max(v.number for v in f.enum_type.values)
        return st.integers(-1, n + 2)
    raise AssertionError(f"no strategy for {f.full_name}")


@st.composite
def messages(draw: st.DrawFn, desc: Descriptor, depth: int = 0) -> Any:
    """A random message of type ``desc``: each field set or not, oneofs at most one member."""
    from google.protobuf import message_factory

    msg = message_factory.GetMessageClass(desc)()
    if desc.full_name in ("google.protobuf.Duration", "google.protobuf.Timestamp"):
        msg.seconds = draw(_ints(-(2**40), 2**40))
        msg.nanos = draw(st.sampled_from([0, 1, 999_999_999, -1, 5]))
        return msg
    chosen_oneofs = {o.name: draw(st.sampled_from([None, *o.fields])) for o in desc.oneofs}
    for f in desc.fields:
        oneof = f.containing_oneof
        if oneof is not None and chosen_oneofs[oneof.name] is not f:
            continue
        if oneof is None and not draw(st.booleans()):
            continue
        if f.message_type is not None and f.message_type.GetOptions().map_entry:
            continue
        if f.type == FieldDescriptor.TYPE_MESSAGE:
            if depth >= 3:
                continue
            sub = messages(f.message_type, depth + 1)
            if f.is_repeated:
                for item in draw(st.lists(sub, max_size=3)):
                    getattr(msg, f.name).add().CopyFrom(item)
            else:
                getattr(msg, f.name).CopyFrom(draw(sub))
            continue
        if f.is_repeated:
            getattr(msg, f.name).extend(draw(st.lists(_scalar(f), max_size=4)))
        else:
            setattr(msg, f.name, draw(_scalar(f)))
    return msg


@st.composite
def mutated(draw: st.DrawFn, desc: Descriptor) -> bytes:
    """A valid message of type ``desc``, serialized, then a few bytes flipped, inserted,
    deleted or the end cut off: mostly wire-format damage inside otherwise plausible input."""
    data = bytearray(draw(messages(desc)).SerializeToString())
    for op, pos, byte in draw(
        st.lists(
            st.tuples(st.sampled_from("fidt"), st.integers(0, 1 << 16), st.integers(0, 255)),
            min_size=1,
            max_size=4,
        )
    ):
        i = pos % (len(data) + 1)
        if op == "f" and i < len(data):
            data[i] ^= byte or 1
        elif op == "i":
            data.insert(i, byte)
        elif op == "d" and i < len(data):
            del data[i]
        elif op == "t":
            del data[i:]
    return bytes(data) or b"\xff"


def _all_finite(msg: Any) -> bool:
    for f, v in msg.ListFields():
        values = v if f.is_repeated else [v]
        for x in values:
            if f.type == FieldDescriptor.TYPE_MESSAGE and not _all_finite(x):
                return False
            if isinstance(x, float) and not math.isfinite(x):
                return False
    return True


# ----------------------------------------------------------------------------- the mesh


@pytest.fixture(scope="module")
def fuzz_mesh(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Mesh]:
    with running_mesh(Path(tmp_path_factory.mktemp("fuzz-mesh"))) as m:
        yield m


@pytest.fixture(scope="module")
def channels(fuzz_mesh: Mesh) -> Iterator[dict[str, grpc.Channel]]:
    chans = {
        **{
            f"direct-{g}": grpc.insecure_channel(str(getattr(fuzz_mesh, spec.name)))
            for spec in SERVICES
            for g in spec.grpc_services
        },
        "gateway": fuzz_mesh.channel(),
    }
    yield chans
    for c in chans.values():
        c.close()


def _direct(channels: dict[str, grpc.Channel], m: Method) -> grpc.Channel:
    return channels[f"direct-{m.service}"]


def _stop_running_feeds(channel: grpc.Channel) -> None:
    stub = md_grpc.MarketDataServiceStub(channel)
    for f in stub.ListFeeds(md_pb.ListFeedsRequest(), timeout=10).feeds:
        if f.state == md_pb.RUNNING:
            stub.StopFeed(md_pb.StopFeedRequest(id=f.id), timeout=10)


def _call(
    channel: grpc.Channel, m: Method, payload: bytes
) -> tuple[grpc.StatusCode, str, list[bytes]]:
    """Sends raw request bytes; returns the status, its message and the raw responses."""
    code, message, out = _call_once(channel, m, payload)
    SENT[f"grpc {code.name}"] += 1
    return code, message, out


def _call_once(
    channel: grpc.Channel, m: Method, payload: bytes
) -> tuple[grpc.StatusCode, str, list[bytes]]:
    ident = lambda b: b  # noqa: E731 - raw bytes both ways
    try:
        if m.streaming:
            call = channel.unary_stream(
                m.path, request_serializer=ident, response_deserializer=ident
            )
            out: list[bytes] = []
            it = call(payload, timeout=STREAM_TIMEOUT_S)
            for item in it:
                out.append(item)
                if len(out) >= 3:
                    it.cancel()
                    break
            return grpc.StatusCode.OK, "", out
        unary = channel.unary_unary(m.path, request_serializer=ident, response_deserializer=ident)
        return grpc.StatusCode.OK, "", [unary(payload, timeout=UNARY_TIMEOUT_S)]
    except grpc.RpcError as e:
        return e.code(), e.details() or "", []


def _check(m: Method, code: grpc.StatusCode, message: str, *, what: str) -> None:
    assert code not in BAD_CODES, f"{m.path} {what}: {code.name} {message[:300]!r}"
    if not m.streaming:
        assert code is not grpc.StatusCode.DEADLINE_EXCEEDED, f"{m.path} {what}: hang"
    assert len(message) <= MAX_MESSAGE, f"{m.path} {what}: {len(message)}-char message"


@pytest.mark.parametrize("method", METHODS, ids=IDS)
def test_random_messages_get_a_clear_answer(
    method: Method, channels: dict[str, grpc.Channel]
) -> None:
    from google.protobuf import message_factory

    response_cls = message_factory.GetMessageClass(method.desc.output_type)
    feeds = channels["direct-tradecore.marketdata.v1.MarketDataService"]

    @settings(
        max_examples=examples(method, 40, 12),
        deadline=None,
        derandomize=True,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(msg=messages(method.request))
    def run(msg: Any) -> None:
        for name in ("direct", "gateway"):
            ch = _direct(channels, method) if name == "direct" else channels["gateway"]
            code, message, out = _call(ch, method, msg.SerializeToString())
            _check(method, code, message, what=f"{name} {msg!s:.400}")
            if code is grpc.StatusCode.OK and _all_finite(msg):
                for raw in out:
                    reply = response_cls.FromString(raw)
                    assert _all_finite(reply), f"{method.path}: non-finite answer to {msg!s:.400}"
        if method.desc.name == "StartFeed":
            _stop_running_feeds(feeds)

    run()


@pytest.mark.parametrize("method", METHODS, ids=IDS)
def test_random_bytes_are_invalid_argument_not_unknown(
    method: Method, channels: dict[str, grpc.Channel]
) -> None:
    feeds = channels["direct-tradecore.marketdata.v1.MarketDataService"]

    @settings(
        max_examples=examples(method, 25, 6),
        deadline=None,
        derandomize=True,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(
        payload=st.one_of(
            st.binary(min_size=1, max_size=256),
            st.just(b"\xff\xff\xff\xff"),
            mutated(method.request),
        )
    )
    def run(payload: bytes) -> None:
        code, message, _ = _call(_direct(channels, method), method, payload)
        _check(method, code, message, what=f"bytes {payload[:40]!r}")
        if method.desc.name == "StartFeed":
            _stop_running_feeds(feeds)

    run()


# ----------------------------------------------------------------------------- the JSON matrix


def _routes() -> list[tuple[Method, str, str, str]]:
    """(method, HTTP verb, path template, body rule) for every annotated RPC."""
    out = []
    for m in METHODS:
        rule = m.http_rule()
        if rule is None:
            continue
        verb = rule.WhichOneof("pattern")
        out.append((m, verb.upper(), getattr(rule, verb), rule.body))
    return out


ROUTES = _routes()


def _fill(template: str) -> str:
    """The template with every {var} replaced by a plausible value."""
    out, i = [], 0
    while i < len(template):
        if template[i] == "{":
            j = template.index("}", i)
            out.append("GOOG" if "symbol" in template[i:j] else "nonexistent-1")
            i = j + 1
        else:
            out.append(template[i])
            i += 1
    return "".join(out)


def _http(mesh: Mesh, verb: str, path: str, body: bytes | None) -> tuple[int, bytes]:
    req = urllib.request.Request(
        f"http://{mesh.gateway}{path}",
        data=body,
        method=verb,
        headers={
            **mesh.auth_headers(),
            **({"content-type": "application/json"} if body is not None else {}),
        },
    )
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            SENT[f"json {r.status}"] += 1
            return r.status, r.read(1 << 20)
    except urllib.error.HTTPError as e:
        SENT[f"json {e.code}"] += 1
        with e:
            return e.code, e.read(1 << 20)


def _body_cases(desc: Descriptor) -> list[tuple[str, bytes]]:
    """Documents that must be refused with 400 whatever the message."""
    cases = [
        ("truncated", b'{"a": 1'),
        ("trailing comma", b"{},"),
        ("trailing comma in object", b'{"x": 1,}'),
        ("not an object", b"[1, 2]"),
        ("null document", b"null"),
        ("garbage", b"\xff\xfe{"),
        ("unknown field", b'{"no_such_field_xyz": 1}'),
        ("long unknown field", json.dumps({"f" * 5000: 1}).encode()),
    ]
    for f in desc.fields:
        name = f.json_name
        if f.is_repeated and f.type == FieldDescriptor.TYPE_MESSAGE:
            if not f.message_type.GetOptions().map_entry:
                cases.append((f"[null] in {name}", json.dumps({name: [None]}).encode()))
                cases.append((f"trailing comma in {name}", f'{{"{name}": [{{}},]}}'.encode()))
                sub = f.message_type.fields[0].json_name if f.message_type.fields else "x"
                cases.append(
                    (
                        f"misspelled field in {name}[0]",
                        json.dumps({name: [{sub + "_x": 1}]}).encode(),
                    )
                )
        elif f.type in (FieldDescriptor.TYPE_DOUBLE, FieldDescriptor.TYPE_FLOAT):
            cases.append((f"string for {name}", json.dumps({name: "abc" * 2000}).encode()))
            cases.append((f"object for {name}", json.dumps({name: {"a": 1}}).encode()))
    return cases


def _check_error(status: int, raw: bytes, what: str) -> dict[str, Any]:
    assert status == 400, f"{what}: HTTP {status} {raw[:300]!r}"
    try:
        body = json.loads(raw)
    except ValueError:
        raise AssertionError(
            f"{what}: HTTP 400 with a body that is not JSON: {raw[:300]!r}"
        ) from None
    assert isinstance(body, dict) and body.get("message"), f"{what}: no message in {raw[:300]!r}"
    assert len(body["message"]) <= MAX_MESSAGE, f"{what}: {len(body['message'])}-char message"
    return body


@pytest.mark.parametrize("route", ROUTES, ids=[f"{v} {p}" for _, v, p, _ in ROUTES])
def test_json_bad_input_matrix(route: tuple[Method, str, str, str], fuzz_mesh: Mesh) -> None:
    method, verb, template, body_rule = route
    path = _fill(template)
    if body_rule:
        for name, doc in _body_cases(method.request):
            status, raw = _http(fuzz_mesh, verb, path, doc)
            _check_error(status, raw, f"{verb} {path} {name}")
    # Query parameters: an unknown one, and a long bad value for every scalar field.
    status, raw = _http(
        fuzz_mesh, verb, path + "?no_such_param_xyz=1", b"{}" if body_rule else None
    )
    _check_error(status, raw, f"{verb} {path}?no_such_param_xyz")
    if not body_rule:
        for f in method.request.fields:
            if f.type == FieldDescriptor.TYPE_MESSAGE or f"{{{f.name}}}" in template:
                continue
            if f.type in (FieldDescriptor.TYPE_STRING, FieldDescriptor.TYPE_BYTES):
                continue
            q = urllib.parse.urlencode({f.json_name: "z" * 5000})
            status, raw = _http(fuzz_mesh, verb, f"{path}?{q}", None)
            _check_error(status, raw, f"{verb} {path}?{f.json_name}=<5000 chars>")


def test_mesh_is_healthy_after_the_fuzzing(
    fuzz_mesh: Mesh, capsys: pytest.CaptureFixture[str]
) -> None:
    """Runs last in this module: every component still up, none restarted; the count of
    messages sent printed (and checked against ``TRADECORE_FUZZ_MIN_MESSAGES``)."""
    time.sleep(0.5)
    status = fuzz_mesh.run("status")
    assert status.returncode == 0, status.stdout + status.stderr
    state = fuzz_mesh.state()
    restarts = {
        name: c.get("restarts", 0)
        for name, c in dict(state.get("components", {})).items()  # type: ignore[arg-type]
        if isinstance(c, dict)
    }
    assert not any(restarts.values()), restarts
    total = sum(SENT.values())
    with capsys.disabled():
        print(
            f"\nfuzz: {total} messages sent (scale {SCALE:g}): "
            + ", ".join(f"{k} {n}" for k, n in sorted(SENT.items()))
        )
    if os.environ.get("TRADECORE_FUZZ_REPORT"):
        Path(os.environ["TRADECORE_FUZZ_REPORT"]).write_text(
            json.dumps(
                {
                    "scale": SCALE,
                    "messages": total,
                    "by_outcome": dict(SENT),
                    "rpcs": len(METHODS),
                    "json_routes": len(ROUTES),
                    "restarts": restarts,
                },
                indent=2,
            )
            + "\n"
        )
    assert total >= int(os.environ.get("TRADECORE_FUZZ_MIN_MESSAGES", "0")), total
