"""gRPC servicer for tradecore.inference.v1.ModelService: a thin layer over the model registry
(:class:`tradecore.inference.registry.ModelRegistry`) and the traffic router
(:class:`tradecore.inference.rollout.Router`).

Reads (models, policies, reports) come from the registry's and router's memory, on the loop.
Writes (a registration, an alias move, a policy) go to the store and the blob files, which
block: they run on ``store_executor``, the one thread the service's store calls run on (chDB
calls are not concurrent). After a write that can change what serves a model (a registration,
an alias move, a policy) the servicer awaits ``on_change(name)``, the service's reload of that
model, before it answers: a rollback answered is a rollback in force.
"""

from __future__ import annotations

import asyncio
import io
import math
import zipfile
from collections.abc import Awaitable, Callable
from concurrent.futures import Executor
from typing import Any, TypeAlias, TypeVar

import grpc
import numpy as np
from google.protobuf import json_format
from tradecore.inference.registry import AliasEvent, Lineage, ModelRegistry, VersionInfo
from tradecore.inference.rollout import (
    PolicyKind,
    PolicyRecord,
    Router,
    TestResult,
    TrafficPolicy,
)
from tradecore_api.inference.v1 import models_pb2 as pb
from tradecore_api.inference.v1 import models_pb2_grpc as pb_grpc

Context: TypeAlias = "grpc.aio.ServicerContext[Any, Any]"
T = TypeVar("T")

_KINDS = {
    pb.POLICY_KIND_UNSPECIFIED: PolicyKind.NONE,
    pb.NONE: PolicyKind.NONE,
    pb.CANARY: PolicyKind.CANARY,
    pb.SHADOW: PolicyKind.SHADOW,
    pb.AB: PolicyKind.AB,
}
_KIND_PB = {
    PolicyKind.NONE: pb.NONE,
    PolicyKind.CANARY: pb.CANARY,
    PolicyKind.SHADOW: pb.SHADOW,
    PolicyKind.AB: pb.AB,
}


def _finite(x: float) -> float:
    """0 for NaN/infinity: a statistic that does not exist yet is absent, never NaN."""
    return x if math.isfinite(x) else 0.0


def lineage_pb(lineage: Lineage) -> pb.Lineage:
    out = pb.Lineage(
        data_source=lineage.data_source,
        data_start=lineage.data_start,
        data_end=lineage.data_end,
        code_version=lineage.code_version,
        parent_version=lineage.parent_version or 0,
    )
    if lineage.seed is not None:
        out.seed = lineage.seed
    out.params.update(dict(lineage.params))
    return out


def lineage_of(message: pb.Lineage) -> Lineage:
    params = json_format.MessageToDict(message.params) if message.HasField("params") else {}
    if message.parent_version > 0x7FFFFFFF:
        raise ValueError(f"lineage.parent_version: too large, got {message.parent_version}")
    return Lineage(
        data_source=message.data_source,
        data_start=message.data_start,
        data_end=message.data_end,
        code_version=message.code_version,
        seed=message.seed if message.HasField("seed") else None,
        params=params,
        parent_version=message.parent_version or None,
    )


def version_pb(info: VersionInfo, aliases: dict[str, int]) -> pb.ModelVersion:
    return pb.ModelVersion(
        name=info.name,
        version=info.version,
        sha256=info.sha256,
        file_name=info.file_name,
        platform=info.platform,
        size_bytes=info.size_bytes,
        aliases=sorted(a for a, v in aliases.items() if v == info.version),
        lineage=lineage_pb(info.lineage),
        metrics=dict(info.metrics),
        config=dict(info.config),
        description=info.description,
        reference_sha256=info.reference_sha256,
        created_time_ns=info.created_ns,
        created_by=info.created_by,
    )


def alias_event_pb(ev: AliasEvent) -> pb.AliasEvent:
    return pb.AliasEvent(
        alias=ev.alias,
        version=ev.version,
        previous_version=ev.previous,
        time_ns=ev.time_ns,
        actor=ev.actor,
        reason=ev.reason,
    )


def policy_pb(name: str, rec: PolicyRecord | None) -> pb.TrafficPolicy:
    if rec is None:
        default = TrafficPolicy()
        return pb.TrafficPolicy(
            name=name, kind=pb.NONE, alpha=default.alpha, tolerance=default.tolerance
        )
    p = rec.policy
    return pb.TrafficPolicy(
        name=name,
        kind=_KIND_PB[p.kind],
        challenger_version=p.challenger,
        percent=p.percent,
        seed=p.seed,
        alpha=p.alpha,
        tolerance=p.tolerance,
        actor=rec.actor,
        reason=rec.reason,
        time_ns=rec.time_ns,
    )


def test_pb(result: TestResult) -> pb.SignificanceTest:
    return pb.SignificanceTest(
        test=result.test,
        ready=result.ready,
        statistic=_finite(result.statistic),
        df=_finite(result.df),
        p_value=_finite(result.p_value),
        alpha=result.alpha,
        significant=result.significant,
        difference=_finite(result.difference),
        ci_low=_finite(result.ci_low),
        ci_high=_finite(result.ci_high),
        note=result.note,
    )


def reference_of(data: bytes) -> dict[str, Any] | None:
    """The arrays of an .npz file (None for no bytes); ValueError naming ``reference_npz``."""
    if not data:
        return None
    try:
        with np.load(io.BytesIO(data), allow_pickle=False) as npz:
            if not isinstance(npz, np.lib.npyio.NpzFile):
                raise ValueError("not an .npz archive")
            return {k: npz[k] for k in npz.files}
    except (ValueError, OSError, zipfile.BadZipFile, EOFError) as exc:
        raise ValueError(f"reference_npz: not a readable .npz of numeric arrays ({exc})") from None


class ModelsServicer(pb_grpc.ModelServiceServicer):
    """``store_executor``: the single thread the registry's and router's store calls run on;
    ``on_change``: awaited with the model's name after every write that can change what serves
    it (its error, e.g. a version that fails to load, is the call's)."""

    def __init__(
        self,
        registry: ModelRegistry,
        router: Router,
        store_executor: Executor,
        *,
        on_change: Callable[[str], Awaitable[object]] | None = None,
    ) -> None:
        self.registry = registry
        self.router = router
        self.store_executor = store_executor
        self.on_change = on_change

    async def _write(self, fn: Callable[[], T]) -> T:
        return await asyncio.get_running_loop().run_in_executor(self.store_executor, fn)

    async def _changed(self, name: str) -> None:
        if self.on_change is not None:
            await self.on_change(name)

    def _model(self, name: str) -> pb.Model:
        versions = self.registry.versions(name)
        aliases = self.registry.aliases(name)
        return pb.Model(
            name=name,
            versions=[version_pb(v, aliases) for v in versions],
            aliases=aliases,
            alias_history=[alias_event_pb(e) for e in self.registry.alias_history(name)],
            default_version=self.registry.default_version(name),
            policy=policy_pb(name, self.router.policy(name)),
        )

    async def ListModels(
        self, request: pb.ListModelsRequest, context: Context
    ) -> pb.ListModelsResponse:
        out = pb.ListModelsResponse()
        for name in self.registry.models():
            versions = self.registry.versions(name)
            rec = self.router.policy(name)
            out.models.append(
                pb.ModelSummary(
                    name=name,
                    latest_version=versions[-1].version,
                    version_count=len(versions),
                    aliases=self.registry.aliases(name),
                    policy=_KIND_PB[rec.policy.kind if rec else PolicyKind.NONE],
                )
            )
        return out

    async def GetModel(self, request: pb.GetModelRequest, context: Context) -> pb.Model:
        return self._model(request.name)

    async def RegisterModel(
        self, request: pb.RegisterModelRequest, context: Context
    ) -> pb.ModelVersion:
        lineage = lineage_of(request.lineage)

        def register() -> int:
            # The reference archive is read here, off the loop, like the file's hashing.
            return self.registry.register(
                request.name,
                request.model,
                file_name=request.file_name,
                platform=request.platform,
                lineage=lineage,
                metrics=dict(request.metrics),
                reference=reference_of(request.reference_npz),
                config=dict(request.config),
                description=request.description,
                actor=request.actor,
            )

        version = await self._write(register)
        await self._changed(request.name)
        return version_pb(
            self.registry.version(request.name, version), self.registry.aliases(request.name)
        )

    async def SetAlias(self, request: pb.SetAliasRequest, context: Context) -> pb.Model:
        await self._write(
            lambda: self.registry.set_alias(
                request.name,
                request.alias,
                request.version,
                actor=request.actor,
                reason=request.reason,
            )
        )
        await self._changed(request.name)
        return self._model(request.name)

    async def DeleteAlias(self, request: pb.DeleteAliasRequest, context: Context) -> pb.Model:
        await self._write(
            lambda: self.registry.remove_alias(
                request.name, request.alias, actor=request.actor, reason=request.reason
            )
        )
        await self._changed(request.name)
        return self._model(request.name)

    async def Rollback(self, request: pb.RollbackRequest, context: Context) -> pb.Model:
        await self._write(
            lambda: self.registry.rollback(
                request.name, request.alias, actor=request.actor, reason=request.reason
            )
        )
        await self._changed(request.name)
        return self._model(request.name)

    async def SetTrafficPolicy(
        self, request: pb.SetTrafficPolicyRequest, context: Context
    ) -> pb.TrafficPolicy:
        if request.kind not in _KINDS:
            raise ValueError(f"kind: unknown policy kind {request.kind}")
        defaults = TrafficPolicy()
        policy = TrafficPolicy(
            kind=_KINDS[request.kind],
            challenger=request.challenger_version,
            percent=request.percent,
            seed=request.seed,
            alpha=request.alpha if request.HasField("alpha") else defaults.alpha,
            tolerance=request.tolerance if request.HasField("tolerance") else defaults.tolerance,
        )
        rec = await self._write(
            lambda: self.router.set_policy(
                request.name, policy, actor=request.actor, reason=request.reason
            )
        )
        await self._changed(request.name)
        return policy_pb(request.name, rec)

    async def GetTrafficPolicy(
        self, request: pb.GetTrafficPolicyRequest, context: Context
    ) -> pb.TrafficPolicy:
        self.registry.versions(request.name)  # NOT_FOUND for an unknown model
        return policy_pb(request.name, self.router.policy(request.name))

    async def GetRolloutReport(
        self, request: pb.GetRolloutReportRequest, context: Context
    ) -> pb.RolloutReport:
        report = self.router.report(request.name)
        out = pb.RolloutReport(
            name=report.name,
            policy=policy_pb(report.name, report.policy),
            since_time_ns=report.since_ns,
            default_version=report.champion,
        )
        for arm in report.arms:
            a = out.arms.add(
                arm=arm.arm, version=arm.version, requests=arm.requests, outcomes=arm.outcomes
            )
            if math.isfinite(arm.mean):
                a.mean = arm.mean
            if math.isfinite(arm.std):
                a.std = arm.std
        if report.welch is not None:
            out.welch.CopyFrom(test_pb(report.welch))
        if report.proportions is not None:
            out.proportions.CopyFrom(test_pb(report.proportions))
        if report.shadow is not None:
            s = report.shadow
            out.shadow.CopyFrom(
                pb.ShadowReport(
                    champion_version=s.champion,
                    shadow_version=s.shadow,
                    mirrored=s.mirrored,
                    compared=s.compared,
                    failed=s.failed,
                    dropped=s.dropped,
                    agreement=_finite(s.agreement),
                    outputs=[
                        pb.OutputComparison(
                            output=o.output,
                            compared=o.compared,
                            mean_abs_diff=_finite(o.mean_abs_diff),
                            max_abs_diff=_finite(o.max_abs_diff),
                            agreement=_finite(o.agreement),
                        )
                        for o in s.outputs
                    ],
                )
            )
        return out

    async def RecordOutcome(
        self, request: pb.RecordOutcomeRequest, context: Context
    ) -> pb.RecordOutcomeResponse:
        decision = self.router.record_outcome(request.request_id, request.value)
        return pb.RecordOutcomeResponse(
            name=decision.name, version=decision.served, arm=decision.arm
        )
