"""ModelService over a real in-process grpc.aio server (with the services' interceptor, so
errors reach the client with the status codes a mesh gives): registration, aliases and
rollback, traffic policies, outcomes and the rollout report, and a restart."""

from __future__ import annotations

import asyncio
import io
import json
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import grpc
import numpy as np
import pytest
from google.protobuf import json_format
from prometheus_client import CollectorRegistry
from tradecore import store
from tradecore.inference.registry import ModelRegistry
from tradecore.inference.rollout import Router
from tradecore_api.inference.v1 import models_pb2 as pb
from tradecore_api.inference.v1 import models_pb2_grpc as pb_grpc
from tradecore_services.common.interceptors import RpcMetrics, ServiceInterceptor
from tradecore_services.inference.models_servicer import ModelsServicer

T = TypeVar("T")


@dataclass
class Service:
    stub: pb_grpc.ModelServiceStub
    router: Router
    registry: ModelRegistry
    target: str


@asynccontextmanager
async def serve(tmp_path: Path) -> AsyncIterator[Service]:
    """The servicer as a service wires it: the store, registry and router made on the one
    store thread, which the servicer's writes then run on."""
    pool = ThreadPoolExecutor(1, thread_name_prefix="model-store")
    loop = asyncio.get_running_loop()

    def on_store(fn: Callable[[], T]) -> asyncio.Future[T]:
        return loop.run_in_executor(pool, fn)

    db = await on_store(lambda: store.connect(store.default_dsn(tmp_path, "inference")))
    registry = await on_store(lambda: ModelRegistry(tmp_path / "models", db))
    router = await on_store(lambda: Router(registry, db))
    server = grpc.aio.server(
        interceptors=[ServiceInterceptor(RpcMetrics(CollectorRegistry(), "inference"))]
    )
    pb_grpc.add_ModelServiceServicer_to_server(ModelsServicer(registry, router, pool), server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            target = f"127.0.0.1:{port}"
            yield Service(pb_grpc.ModelServiceStub(channel), router, registry, target)
    finally:
        await server.stop(None)
        await on_store(db.close)
        pool.shutdown()


def npz(**arrays: Any) -> bytes:
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    return buf.getvalue()


async def register(stub: pb_grpc.ModelServiceStub, content: bytes, **kw: Any) -> pb.ModelVersion:
    request = pb.RegisterModelRequest(name="pricer", file_name="pricer.onnx", model=content, **kw)
    version: pb.ModelVersion = await stub.RegisterModel(request)
    return version


async def code_of(call: Any) -> tuple[grpc.StatusCode, str]:
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await call
    return err.value.code(), err.value.details() or ""


def test_registry_and_aliases_over_grpc(tmp_path: Path) -> None:
    async def main() -> None:
        async with serve(tmp_path) as svc:
            stub = svc.stub
            lineage = pb.Lineage(
                data_source="lobster", data_start="2012-06-21", data_end="2012-06-21", seed=5
            )
            lineage.params.update({"lr": 0.001, "arch": "mlp"})
            v1 = await register(
                stub,
                b"model-1",
                lineage=lineage,
                metrics={"rmse": 0.5},
                reference_npz=npz(x=np.ones((4, 3), np.float32)),
                description="first",
                actor="alice",
            )
            assert (v1.version, v1.platform, v1.created_by) == (1, "onnxruntime_onnx", "alice")
            assert v1.lineage.seed == 5 and dict(v1.lineage.params) == {"lr": 0.001, "arch": "mlp"}
            assert len(v1.sha256) == 64 and v1.reference_sha256 and v1.metrics["rmse"] == 0.5
            assert svc.registry.reference("pricer", 1)["x"].shape == (4, 3)
            v2 = await register(stub, b"model-2", lineage=pb.Lineage(parent_version=1))
            assert v2.version == 2 and v2.lineage.parent_version == 1 and not v2.reference_sha256

            model = await stub.SetAlias(
                pb.SetAliasRequest(name="pricer", alias="champion", version=1, actor="alice")
            )
            assert dict(model.aliases) == {"champion": 1} and model.default_version == 1
            await stub.SetAlias(
                pb.SetAliasRequest(
                    name="pricer", alias="champion", version=2, actor="bob", reason="better"
                )
            )
            model = await stub.Rollback(
                pb.RollbackRequest(name="pricer", alias="champion", actor="carol", reason="p&l")
            )
            assert model.default_version == 1
            assert [(e.version, e.previous_version, e.actor) for e in model.alias_history] == [
                (1, 0, "alice"),
                (2, 1, "bob"),
                (1, 2, "carol"),
            ]
            assert [list(v.aliases) for v in model.versions] == [["champion"], []]
            await stub.SetAlias(
                pb.SetAliasRequest(name="pricer", alias="staging", version=2, actor="a")
            )
            model = await stub.DeleteAlias(
                pb.DeleteAliasRequest(name="pricer", alias="staging", actor="a")
            )
            assert "staging" not in model.aliases
            listed = await stub.ListModels(pb.ListModelsRequest())
            assert [(m.name, m.latest_version, m.version_count) for m in listed.models] == [
                ("pricer", 2, 2)
            ]
            assert listed.models[0].policy == pb.NONE

    asyncio.run(main())


def test_policies_outcomes_and_report_over_grpc_and_after_a_restart(tmp_path: Path) -> None:
    async def first() -> None:
        async with serve(tmp_path) as svc:
            stub = svc.stub
            await register(stub, b"1")
            await register(stub, b"2")
            await stub.SetAlias(
                pb.SetAliasRequest(name="pricer", alias="champion", version=1, actor="a")
            )
            policy = await stub.SetTrafficPolicy(
                pb.SetTrafficPolicyRequest(
                    name="pricer", kind=pb.AB, challenger_version=2, percent=50, actor="alice"
                )
            )
            assert (policy.kind, policy.alpha, policy.actor) == (pb.AB, 0.05, "alice")
            report = await stub.GetRolloutReport(pb.GetRolloutReportRequest(name="pricer"))
            # before any outcome: the test is not ready, and nothing in the answer is NaN
            assert not report.welch.ready and "NaN" not in json_format.MessageToJson(report)
            rng = np.random.default_rng(0)
            for i in range(400):
                d = svc.router.route("pricer", f"r{i}")
                answer = await stub.RecordOutcome(
                    pb.RecordOutcomeRequest(
                        request_id=f"r{i}", value=float(rng.normal(d.served - 1, 1.0))
                    )
                )
                assert (answer.name, answer.version) == ("pricer", d.served)
            report = await stub.GetRolloutReport(pb.GetRolloutReportRequest(name="pricer"))
            assert report.welch.ready and report.welch.significant
            assert 0.8 < report.welch.difference < 1.2
            assert sorted((a.arm, a.version) for a in report.arms) == [
                ("challenger", 2),
                ("champion", 1),
            ]
            assert sum(a.outcomes for a in report.arms) == 400
            await stub.SetTrafficPolicy(
                pb.SetTrafficPolicyRequest(
                    name="pricer", kind=pb.SHADOW, challenger_version=2, percent=100, actor="b"
                )
            )
            d = svc.router.route("pricer", "s1")
            svc.router.record_shadow(d, {"y": np.array([1.0])}, {"y": np.array([1.5])})
            report = await stub.GetRolloutReport(pb.GetRolloutReportRequest(name="pricer"))
            assert (report.shadow.compared, report.shadow.agreement) == (1, 0.0)
            assert report.shadow.outputs[0].max_abs_diff == 0.5

    async def second() -> None:
        async with serve(tmp_path) as svc:
            policy = await svc.stub.GetTrafficPolicy(pb.GetTrafficPolicyRequest(name="pricer"))
            assert (policy.kind, policy.challenger_version, policy.actor) == (pb.SHADOW, 2, "b")
            model = await svc.stub.GetModel(pb.GetModelRequest(name="pricer"))
            assert dict(model.aliases) == {"champion": 1} and len(model.versions) == 2
            assert svc.router.route("pricer", "x").shadow == 2

    asyncio.run(first())
    asyncio.run(second())


def test_errors_have_their_status_and_name_the_field(tmp_path: Path) -> None:
    async def main() -> None:
        async with serve(tmp_path) as svc:
            stub = svc.stub
            invalid = grpc.StatusCode.INVALID_ARGUMENT
            code, msg = await code_of(stub.GetModel(pb.GetModelRequest(name="nope")))
            assert code == grpc.StatusCode.NOT_FOUND and "'nope'" in msg
            code, msg = await code_of(stub.GetModel(pb.GetModelRequest(name="bad name")))
            assert code == invalid and msg.startswith("name:")
            code, msg = await code_of(register(svc.stub, b"x", reference_npz=b"not a zip"))
            assert code == invalid and msg.startswith("reference_npz:")
            code, msg = await code_of(register(svc.stub, b""))
            assert code == invalid and msg.startswith("model:")
            bad_lineage = pb.Lineage(data_start="soon")
            code, msg = await code_of(register(svc.stub, b"x", lineage=bad_lineage))
            assert code == invalid and msg.startswith("lineage.data_start:")
            await register(stub, b"1")
            await register(stub, b"2")
            code, msg = await code_of(
                stub.SetAlias(pb.SetAliasRequest(name="pricer", alias="champion", version=1))
            )
            assert code == invalid and msg.startswith("actor:")
            await stub.SetAlias(
                pb.SetAliasRequest(name="pricer", alias="champion", version=1, actor="a")
            )
            code, msg = await code_of(
                stub.Rollback(pb.RollbackRequest(name="pricer", alias="champion", actor="a"))
            )
            assert code == grpc.StatusCode.FAILED_PRECONDITION and "champion" in msg
            for request, field in (
                (pb.SetTrafficPolicyRequest(kind=pb.CANARY, challenger_version=2), "percent"),
                (pb.SetTrafficPolicyRequest(kind=pb.CANARY, percent=10), "challenger"),
                (
                    pb.SetTrafficPolicyRequest(
                        kind=pb.AB, challenger_version=2, percent=10, alpha=0
                    ),
                    "alpha",
                ),
                (pb.SetTrafficPolicyRequest(kind=99), "kind"),  # type: ignore[arg-type]
            ):
                request.name, request.actor = "pricer", "a"
                code, msg = await code_of(stub.SetTrafficPolicy(request))
                assert code == invalid and msg.startswith(f"{field}:"), msg
            code, msg = await code_of(
                stub.SetTrafficPolicy(
                    pb.SetTrafficPolicyRequest(
                        name="pricer", kind=pb.AB, challenger_version=7, percent=5, actor="a"
                    )
                )
            )
            assert code == grpc.StatusCode.NOT_FOUND and "no version 7" in msg
            code, msg = await code_of(
                stub.RecordOutcome(pb.RecordOutcomeRequest(request_id="never", value=1))
            )
            assert code == grpc.StatusCode.NOT_FOUND and msg.startswith("request_id:")
            code, msg = await code_of(
                stub.RecordOutcome(pb.RecordOutcomeRequest(request_id="r", value=float("nan")))
            )
            assert code == invalid and msg.startswith("value:")
            code, msg = await code_of(stub.GetRolloutReport(pb.GetRolloutReportRequest(name="x")))
            assert code == grpc.StatusCode.NOT_FOUND
            # nothing half-done: the failed registrations left no version
            model = await stub.GetModel(pb.GetModelRequest(name="pricer"))
            assert [v.version for v in model.versions] == [1, 2]
            assert json.loads(json_format.MessageToJson(model))["name"] == "pricer"

    asyncio.run(main())
