"""Several versions of a model served at once from the model registry: the champion, a
traffic policy's challenger, versions requested by number (loaded on demand, least recently
used closed first), routing by request id, shadows off the caller's path, alias moves and
rollbacks that change what answers at once, and versions closed only after their running calls
finished. Real registry, router and chDB store; real ONNX Runtime engines."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator, Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import numpy.typing as npt
import onnxruntime as ort
import pytest
from aiohttp.test_utils import TestClient, TestServer
from tradecore import store
from tradecore.errors import NotFoundError
from tradecore.inference import Engine, ModelMetadata, ModelVersion, Tensors
from tradecore.inference.monitor import MonitorRecorder
from tradecore.inference.registry import ModelRegistry
from tradecore.inference.rollout import PolicyKind, Router, TrafficPolicy, bucket
from tradecore_services.inference import rest
from tradecore_services.inference.models import BatchingRunner, Models, onnx_engine

from tests.inference_models import small_mlp

T = TypeVar("T")
X = np.arange(8, dtype=np.float32).reshape(2, 4) / 5
SCALES = {1: 1.0, 2: 2.0, 3: 3.0}


def expected(version: int, x: npt.NDArray[np.float32] = X) -> npt.NDArray[np.float32]:
    sess = ort.InferenceSession(small_mlp(SCALES[version]), providers=["CPUExecutionProvider"])
    out: npt.NDArray[np.float32] = sess.run(["y"], {"x": x})[0]
    return out


@dataclass
class Setup:
    registry: ModelRegistry
    router: Router
    pool: ThreadPoolExecutor

    async def call(self, fn: Callable[[], T]) -> T:
        return await asyncio.get_running_loop().run_in_executor(self.pool, fn)

    async def alias(self, version: int) -> None:
        await self.call(lambda: self.registry.set_alias("m", "champion", version, actor="t"))

    async def policy(self, kind: PolicyKind, challenger: int = 0, percent: float = 0) -> None:
        p = TrafficPolicy(kind, challenger=challenger, percent=percent, seed=7)
        await self.call(lambda: self.router.set_policy("m", p, actor="t"))


@asynccontextmanager
async def registry_of(tmp_path: Path, versions: int = 2) -> AsyncIterator[Setup]:
    """Model ``m`` with ``versions`` versions (version v scales the MLP's output by v), the
    champion alias on 1; the store on one thread as the service has it."""
    pool = ThreadPoolExecutor(1, thread_name_prefix="model-store")
    s = Setup(None, None, pool)  # type: ignore[arg-type]
    db = await s.call(lambda: store.connect(store.default_dsn(tmp_path, "inference")))
    try:
        s.registry = await s.call(lambda: ModelRegistry(tmp_path / "registry", db))
        s.router = await s.call(lambda: Router(s.registry, db))
        for v in range(1, versions + 1):
            await s.call(
                lambda v=v: s.registry.register(
                    "m", small_mlp(SCALES[v]), file_name="m.onnx", config={"max_batch_size": "16"}
                )
            )
        await s.alias(1)
        yield s
    finally:
        await s.call(db.close)
        pool.shutdown()


def run(coro: Any) -> Any:
    return asyncio.run(coro)


def test_champion_then_a_canary_split_by_request_id(tmp_path: Path) -> None:
    async def body() -> None:
        async with registry_of(tmp_path) as s:
            models = Models(s.registry, router=s.router)
            await models.load_all()
            try:
                assert models.versions("m") == ["1"]
                loaded, out = await models.serve("m", "", "r0", {"x": X}, None)
                assert loaded.version.version == 1
                np.testing.assert_array_equal(out["y"], expected(1))
                assert loaded.metadata.max_batch_size == 16  # from the version's config

                await s.policy(PolicyKind.CANARY, challenger=2, percent=30)
                await models.sync("m")
                assert models.versions("m") == ["1", "2"]
                served = {1: 0, 2: 0}
                for i in range(300):
                    rid = f"req-{i}"
                    loaded, out = await models.serve("m", "", rid, {"x": X}, ["y"])
                    v = loaded.version.version
                    want = 2 if bucket("m", 7, rid) < 30 else 1
                    assert v == want, rid
                    np.testing.assert_array_equal(out["y"], expected(v))
                    served[v] += 1
                # Binomial(300, 0.3): mean 90, sd 7.9; 4.5 sd either side.
                assert 55 <= served[2] <= 125, served
                # The same id is routed to the same version.
                again = [(await models.serve("m", "", "req-5", {"x": X}, None))[0] for _ in "ab"]
                assert again[0] is again[1]
                # Back to NONE: the challenger is closed, every request gets the champion.
                await s.policy(PolicyKind.NONE)
                await models.sync("m")
                assert models.versions("m") == ["1"]
            finally:
                await models.close()

    run(body())


def test_shadow_answers_with_the_champion_and_compares_the_challenger(tmp_path: Path) -> None:
    async def body() -> None:
        async with registry_of(tmp_path) as s:
            await s.policy(PolicyKind.SHADOW, challenger=2, percent=100)
            models = Models(s.registry, router=s.router)
            await models.load_all()
            try:
                assert models.versions("m") == ["1", "2"]
                for i in range(20):
                    loaded, out = await models.serve("m", "", f"s{i}", {"x": X}, None)
                    assert loaded.version.version == 1
                    np.testing.assert_array_equal(out["y"], expected(1))
                await s.router.drain()
                shadow = s.router.report("m").shadow
                assert shadow is not None
                assert (shadow.mirrored, shadow.compared, shadow.failed) == (20, 20, 0)
                assert shadow.agreement == 0.0  # version 2 answers twice as large
                assert models.get("m", "2").stats.success.count == 20
            finally:
                await models.close()

    run(body())


def test_alias_moves_and_rollback_change_what_answers(tmp_path: Path) -> None:
    async def body() -> None:
        async with registry_of(tmp_path) as s:
            models = Models(s.registry, router=s.router)
            await models.load_all()
            try:
                await s.alias(2)
                await models.sync("m")
                loaded, out = await models.serve("m", "", "a", {"x": X}, None)
                assert loaded.version.version == 2 and models.versions("m") == ["2"]
                np.testing.assert_array_equal(out["y"], expected(2))
                await s.call(lambda: s.registry.rollback("m", "champion", actor="t"))
                await models.sync("m")
                loaded, out = await models.serve("m", "", "a", {"x": X}, None)
                assert loaded.version.version == 1 and models.versions("m") == ["1"]
                np.testing.assert_array_equal(out["y"], expected(1))
            finally:
                await models.close()

    run(body())


def test_an_alias_moved_before_the_sync_is_served_by_its_new_target(tmp_path: Path) -> None:
    # The router follows the registry at once; the request loads what it routes to.
    async def body() -> None:
        async with registry_of(tmp_path) as s:
            models = Models(s.registry, router=s.router)
            await models.load_all()
            try:
                await s.alias(2)
                loaded, out = await models.serve("m", "", "a", {"x": X}, None)
                assert loaded.version.version == 2 and models.versions("m") == ["2"]
                np.testing.assert_array_equal(out["y"], expected(2))
            finally:
                await models.close()

    run(body())


def test_versions_named_by_number_load_on_demand_least_recently_used_closed(
    tmp_path: Path,
) -> None:
    async def body() -> None:
        async with registry_of(tmp_path, versions=3) as s:
            models = Models(s.registry, router=s.router, max_on_demand=1)
            await models.load_all()
            try:
                for v in (2, 3):
                    loaded, out = await models.serve("m", str(v), "", {"x": X}, None)
                    assert loaded.version.version == v
                    np.testing.assert_array_equal(out["y"], expected(v))
                # One on-demand version at most: 2 was closed when 3 came; the champion stays.
                assert models.versions("m") == ["1", "3"]
                assert (await models.serve("m", "", "x", {"x": X}, None))[0].version.version == 1
                with pytest.raises(NotFoundError, match="model 'm' has no version 9"):
                    await models.serve("m", "9", "", {"x": X}, None)
                with pytest.raises(NotFoundError, match="model 'zz' is not loaded"):
                    await models.serve("zz", "1", "", {"x": X}, None)
            finally:
                await models.close()
            off = Models(s.registry, router=s.router, max_on_demand=0)
            await off.load_all()
            try:
                with pytest.raises(NotFoundError, match=r"no loaded version '2' \(loaded: \['1'\]"):
                    await off.serve("m", "2", "", {"x": X}, None)
            finally:
                await off.close()

    run(body())


class GatedEngine:
    """An ONNX engine whose calls wait for ``gate`` once it is armed; records its closing."""

    def __init__(self, inner: Engine, gate: threading.Event, log: list[str]) -> None:
        self.inner = inner
        self.gate = gate
        self.log = log
        self.armed = False

    @property
    def metadata(self) -> ModelMetadata:
        return self.inner.metadata

    def run(self, inputs: Mapping[str, npt.NDArray[Any]]) -> Tensors:
        if self.armed:
            self.log.append(f"run {self.metadata.version}")
            self.gate.wait(10)
        return self.inner.run(inputs)

    def warmup(self) -> None:
        self.inner.warmup()

    def close(self) -> None:
        self.log.append(f"close {self.metadata.version}")
        self.inner.close()


def test_a_version_taken_out_of_service_closes_after_its_running_calls(tmp_path: Path) -> None:
    gate = threading.Event()
    log: list[str] = []
    engines: list[GatedEngine] = []

    def factory(mv: ModelVersion) -> Engine:
        engines.append(GatedEngine(onnx_engine(mv), gate, log))
        return engines[-1]

    async def body() -> None:
        async with registry_of(tmp_path) as s:
            models = Models(s.registry, router=s.router, engine_factory=factory)
            await models.load_all()
            try:
                engines[0].armed = True
                call = asyncio.create_task(models.serve("m", "", "slow", {"x": X}, None))
                while not log:
                    await asyncio.sleep(0.01)
                await s.alias(2)
                sync = asyncio.create_task(models.sync("m"))
                while models.versions("m") != ["2"]:
                    await asyncio.sleep(0.01)
                # Version 2 serves; version 1 waits for its call before it closes.
                assert not sync.done()
                assert "close 1" not in log
                gate.set()
                loaded, out = await call
                await sync
                assert loaded.version.version == 1
                np.testing.assert_array_equal(out["y"], expected(1))
                assert log == ["run 1", "close 1"]
            finally:
                await models.close()

    run(body())


def test_a_version_whose_config_asks_for_dynamic_batching_is_served_by_the_batcher(
    tmp_path: Path,
) -> None:
    async def body() -> None:
        async with registry_of(tmp_path, versions=1) as s:
            v = await s.call(
                lambda: s.registry.register(
                    "m",
                    small_mlp(SCALES[2]),
                    file_name="m.onnx",
                    config={"max_batch_size": "16", "max_queue_delay_us": "5000000"},
                )
            )
            await s.alias(v)
            models = Models(s.registry, router=s.router)
            await models.load_all()
            try:
                loaded = models.get("m")
                assert isinstance(loaded.runner, BatchingRunner)
                # Eight calls of two rows fill one batch of 16: one execution, each caller
                # gets its own rows.
                xs = [X + i for i in range(8)]
                answers = await asyncio.gather(
                    *(models.serve("m", "", f"b{i}", {"x": x}, None) for i, x in enumerate(xs))
                )
                for x, (lv, out) in zip(xs, answers, strict=True):
                    assert lv is loaded
                    np.testing.assert_allclose(out["y"], expected(2, x), rtol=1e-6)
                st = loaded.stats
                assert (st.success.count, st.inference_count, st.execution_count) == (8, 16, 1)
                assert st.queue.count == 8 and st.compute_infer.count == 8
            finally:
                await models.close()
            await s.call(
                lambda: s.registry.register(
                    "m", small_mlp(), file_name="m.onnx", config={"max_queue_delay_us": "soon"}
                )
            )
            models = Models(s.registry, router=s.router)
            try:
                await models.load_all()
                with pytest.raises(ValueError, match="max_queue_delay_us 'soon' is not an int"):
                    await models.lookup("m", "3")
            finally:
                await models.close()

    run(body())


def test_every_inference_is_in_the_monitor_by_version_and_role(tmp_path: Path) -> None:
    async def body() -> dict[str, Any]:
        async with registry_of(tmp_path, versions=3) as s:
            recorder = MonitorRecorder()
            models = Models(s.registry, router=s.router, recorder=recorder)
            await s.policy(PolicyKind.SHADOW, challenger=2, percent=100)
            await models.load_all()
            try:
                for i in range(5):
                    await models.serve("m", "", f"r{i}", {"x": X}, None)
                await models.serve("m", "3", "", {"x": X}, None)
                with pytest.raises(ValueError):
                    await models.serve("m", "", "bad", {"x": X[:, :3]}, None)
                await s.router.drain()
            finally:
                await models.close()
            return recorder.snapshot()

    snap = run(body())
    (model,) = snap["models"]
    counts = {
        (x["version"], x["role"]): (sum(x["buckets"]["count"]), sum(x["buckets"]["errors"]))
        for x in model["series"]
    }
    assert counts == {("1", "champion"): (6, 1), ("2", "shadow"): (5, 0), ("3", ""): (1, 0)}


def test_rest_routes_by_the_body_id_else_x_request_id_else_a_new_one(tmp_path: Path) -> None:
    async def body() -> None:
        async with registry_of(tmp_path) as s:
            await s.policy(PolicyKind.CANARY, challenger=2, percent=50)
            models = Models(s.registry, router=s.router)
            await models.load_all()
            app = rest.make_app(
                models, server_name="t", version="1", extensions=(), max_body_bytes=1 << 20
            )
            doc = {"inputs": [{"name": "x", "datatype": "FP32", "shape": [2, 4],
                               "data": X.tolist()}]}  # fmt: skip
            try:
                async with TestClient(TestServer(app)) as client:
                    for i in range(12):
                        rid = f"id-{i}"
                        want = 2 if bucket("m", 7, rid) < 50 else 1
                        for kw in ({"json": {**doc, "id": rid}},
                                   {"json": doc, "headers": {"x-request-id": rid}}):  # fmt: skip
                            r = await client.post("/v2/models/m/infer", **kw)
                            got = await r.json()
                            assert (got["id"], got["model_version"]) == (rid, str(want))
                            np.testing.assert_allclose(
                                np.array(got["outputs"][0]["data"], np.float32).reshape(2, 2),
                                expected(want),
                                rtol=1e-6,
                            )
                    r = await client.post("/v2/models/m/infer", json=doc)
                    assert r.status == 200 and len((await r.json())["id"]) == 32
                    r = await client.post("/v2/models/m/infer", json={**doc, "id": "i" * 129})
                    assert r.status == 400
                    assert (await r.json())["error"] == "id: at most 128 characters, got 129"
            finally:
                await models.close()

    run(body())
