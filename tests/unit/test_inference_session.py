"""The in-process API: load_model from a file or a model source, predict/run with validation."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest
from tradecore.errors import NotFoundError, UnavailableError
from tradecore.inference import ModelSource, ModelVersion, OnnxEngine
from tradecore.inference.session import Model, load_model, open_engine

from tests.inference_models import mlp, two_inputs

MLP = mlp()


@pytest.fixture(scope="module")
def model_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("models") / "surrogate.onnx"
    path.write_bytes(MLP.onnx_bytes)
    return path


def rows(n: int, seed: int = 1) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((n, 5)).astype(np.float32)


@dataclass
class DictSource:
    """A ModelSource over a dict: name → {version: path}, aliases → version."""

    versions: dict[str, dict[int, Path]]
    aliases: dict[tuple[str, str], int] = field(default_factory=dict)

    def resolve(self, name: str, ref: str | None = None) -> ModelVersion:
        if name not in self.versions:
            raise NotFoundError(f"model {name!r}: not found")
        if ref is None:
            v = self.aliases.get((name, "champion"), max(self.versions[name]))
        elif ref.isdigit():
            v = int(ref)
        elif (name, ref) in self.aliases:
            v = self.aliases[(name, ref)]
        else:
            raise NotFoundError(f"model {name!r}: no version or alias {ref!r}")
        if v not in self.versions[name]:
            raise NotFoundError(f"model {name!r}: no version {v}")
        return ModelVersion(name, v, self.versions[name][v], "onnxruntime_onnx")

    def index(self) -> list[ModelVersion]:
        return [self.resolve(n, str(v)) for n, vs in self.versions.items() for v in vs]


def test_load_a_file_and_predict(model_file: Path) -> None:
    with load_model(model_file) as model:
        assert repr(model) == "Model('surrogate', version='1', platform='onnxruntime_onnx')"
        x = rows(3)
        out = model.predict(x=x)
        np.testing.assert_allclose(out["y"], MLP(x), rtol=1e-5, atol=1e-6)
        np.testing.assert_array_equal(model.run({"x": x})["y"], out["y"])
    named = load_model(model_file, "pricer", "7", warmup=False)
    assert (named.metadata.name, named.metadata.version) == ("pricer", "7")


def test_load_from_a_model_source(tmp_path: Path) -> None:
    for v, seed in ((1, 0), (2, 5)):
        (tmp_path / f"{v}.onnx").write_bytes(mlp(seed=seed).onnx_bytes)
    source = DictSource({"surrogate": {1: tmp_path / "1.onnx", 2: tmp_path / "2.onnx"}})
    source.aliases[("surrogate", "champion")] = 1
    assert isinstance(source, ModelSource)
    x = rows(2)
    champion = load_model(source, "surrogate")
    assert champion.metadata.version == "1"
    np.testing.assert_allclose(champion.predict(x=x)["y"], mlp(seed=0)(x), rtol=1e-5, atol=1e-6)
    second = load_model(source, "surrogate", "2")
    assert second.metadata.version == "2"
    np.testing.assert_allclose(second.predict(x=x)["y"], mlp(seed=5)(x), rtol=1e-5, atol=1e-6)
    with pytest.raises(NotFoundError, match="no version or alias 'shadow'"):
        load_model(source, "surrogate", "shadow")
    with pytest.raises(ValueError, match="name: required with a model source"):
        load_model(source)


def test_bad_sources_are_named(tmp_path: Path, model_file: Path) -> None:
    with pytest.raises(ValueError, match="source: no model file"):
        load_model(tmp_path / "absent.onnx")
    other = tmp_path / "model.bin"
    other.write_bytes(b"x")
    with pytest.raises(ValueError, match=r"cannot tell the runtime of .*model\.bin"):
        load_model(other)
    with pytest.raises(ValueError, match="source: a model file path or a ModelSource, got int"):
        load_model(3)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="platform: 'onnxruntime_onnx' or 'tensorrt_plan'"):
        open_engine(model_file, "pytorch_libtorch")


def test_a_tensorrt_plan_without_tensorrt_is_unavailable(tmp_path: Path) -> None:
    from tradecore.inference import tensorrt

    if tensorrt.available():
        pytest.skip("this build has TensorRT")
    plan = tmp_path / "m.plan"
    plan.write_bytes(b"\0" * 16)
    with pytest.raises(UnavailableError, match="built without TensorRT"):
        load_model(plan)
    with pytest.raises(UnavailableError, match=r"TC_TENSORRT=AUTO or ON\), or use the ONNX"):
        tensorrt.TensorRTEngine(b"plan")


def test_fast_and_full_validation_agree(model_file: Path) -> None:
    model = load_model(model_file)
    x = rows(4)
    expect = model.predict(x=x)["y"]
    # Each of these misses the fast check and is converted by the full validation.
    for variant in (np.asfortranarray(x), x.astype(">f4"), np.repeat(x, 2, axis=1)[:, ::2]):
        np.testing.assert_array_equal(model.predict(x=variant)["y"], expect)


@pytest.mark.parametrize(
    ("inputs", "message"),
    [
        ({}, "input tensor 'x': missing"),
        ({"z": np.zeros((1, 5), np.float32)}, "input tensor 'z': model 'surrogate' has inputs"),
        ({"x": np.zeros((1, 4), np.float32)}, r"input tensor 'x': shape \[1, 4\]"),
        ({"x": np.zeros((1, 5), np.float64)}, "input tensor 'x': datatype FP64"),
        ({"x": np.zeros(5, np.float32)}, r"input tensor 'x': shape \[5\]"),
        ({"x": np.full((1, 5), np.nan, np.float32)}, "input tensor 'x': contains NaN"),
        ({"x": np.full((1, 5), np.inf, np.float32)}, "input tensor 'x': contains NaN"),
        ({"x": np.zeros((9, 5), np.float32)}, "input tensor 'x': batch size 9, at most 8"),
        ({"x": [[1.0], [1.0, 2.0]]}, "input tensor 'x': not an array"),
    ],
)
def test_errors_name_the_tensor(model_file: Path, inputs: dict[str, object], message: str) -> None:
    model = load_model(model_file, max_batch_size=8)
    with pytest.raises(ValueError, match=message):
        model.run(inputs)  # type: ignore[arg-type]


def test_nan_is_found_in_any_row_and_any_size(model_file: Path) -> None:
    model = load_model(model_file)
    for n in (1, 3, 4000):
        x = rows(n)
        x[n - 1, 2] = np.nan
        with pytest.raises(ValueError, match="input tensor 'x': contains NaN"):
            model.predict(x=x)
        x[n - 1, 2] = 1e38  # large but finite: accepted
        model.predict(x=x)


def test_several_inputs_in_process() -> None:
    model = Model(OnnxEngine(two_inputs(), name="pair"))
    out = model.predict(a=np.ones((2, 3), np.float32), k=np.array([1, 2], np.int64))
    np.testing.assert_array_equal(out["s"], [4.0, 5.0])
    with pytest.raises(ValueError, match="input tensor 'k': batch size 3, other inputs have 2"):
        model.predict(a=np.ones((2, 3), np.float32), k=np.array([1, 2, 3], np.int64))
    with pytest.raises(ValueError, match="max_elements: at least 1"):
        Model(model.engine, max_elements=0)
