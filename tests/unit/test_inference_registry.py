"""The model registry: versions, content-addressed files, aliases with their history and
rollback, lineage, reference data, and what survives reopening the store."""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from tradecore import store
from tradecore.errors import NotFoundError, PreconditionError
from tradecore.inference.registry import Lineage, ModelRegistry, git_commit
from tradecore.inference.types import ModelSource


@pytest.fixture
def db(tmp_path: Path) -> Iterator[store.Store]:
    with store.connect(store.default_dsn(tmp_path, "models")) as s:
        yield s


def reg(tmp_path: Path, db: store.Store) -> ModelRegistry:
    return ModelRegistry(tmp_path / "models", db)


def model_file(tmp_path: Path, content: bytes, name: str = "m.onnx") -> Path:
    p = tmp_path / "src" / name
    p.parent.mkdir(exist_ok=True)
    p.write_bytes(content)
    return p


def test_register_round_trip_and_model_source(tmp_path: Path, db: store.Store) -> None:
    r = reg(tmp_path, db)
    assert isinstance(r, ModelSource)
    lineage = Lineage(
        data_source="lobster AAPL",
        data_start="2012-06-21",
        data_end="2012-06-22",
        code_version="abc123",
        seed=7,
        params={"lr": 0.01, "layers": 3, "name": "mlp", "bn": True},
    )
    v1 = r.register(
        "pricer",
        model_file(tmp_path, b"one"),
        lineage=lineage,
        metrics={"rmse": 0.25},
        reference={"x": np.arange(6, dtype=np.float32).reshape(3, 2)},
        config={"max_batch_size": "64"},
        description="first",
        actor="alice",
    )
    v2 = r.register("pricer", b"two", file_name="pricer.plan")
    assert (v1, v2) == (1, 2)
    info = r.version("pricer", 1)
    assert info.lineage == lineage and info.metrics == {"rmse": 0.25}
    assert info.description == "first" and info.created_by == "alice"
    assert (
        info.platform == "onnxruntime_onnx" and r.version("pricer", 2).platform == "tensorrt_plan"
    )
    # No champion: the highest version; then the champion; a number; an alias.
    assert r.resolve("pricer").version == 2
    r.set_alias("pricer", "champion", 1, actor="alice", reason="validated")
    assert r.resolve("pricer").version == 1 and r.resolve("pricer", "2").version == 2
    assert r.resolve("pricer", "champion").aliases == ("champion",)
    assert r.resolve("pricer").path.read_bytes() == b"one"
    config = r.resolve("pricer").config
    assert config["max_batch_size"] == "64" and config["sha256"] == info.sha256
    assert config["description"] == "first" and config["file_name"] == "m.onnx"
    assert [(m.name, m.version) for m in r.index()] == [("pricer", 1), ("pricer", 2)]
    ref = r.reference("pricer", 1)
    np.testing.assert_array_equal(ref["x"], np.arange(6, dtype=np.float32).reshape(3, 2))
    assert ref["x"].dtype == np.float32
    with pytest.raises(NotFoundError, match="no reference data"):
        r.reference("pricer", 2)
    # Everything reads back the same from the store.
    again = reg(tmp_path, db)
    assert again.version("pricer", 1) == info
    assert again.aliases("pricer") == {"champion": 1}
    assert again.index() == r.index()


def test_files_are_content_addressed_and_never_overwritten(tmp_path: Path, db: store.Store) -> None:
    r = reg(tmp_path, db)
    r.register("a", model_file(tmp_path, b"same bytes"))
    r.register("b", b"same bytes", file_name="b.onnx")
    r.register("a", b"other bytes", file_name="a.onnx")
    pa, pb, pc = (r.resolve(n, v).path for n, v in (("a", "1"), ("b", "1"), ("a", "2")))
    assert pa == pb != pc
    assert pa.name == hashlib.sha256(b"same bytes").hexdigest() + ".onnx"
    assert r.version("a", 1).sha256 == hashlib.sha256(b"same bytes").hexdigest()
    assert not os.access(pa, os.W_OK) or os.geteuid() == 0
    assert pa.stat().st_mode & 0o222 == 0
    inode = pa.stat().st_ino
    r.register("c", b"same bytes", file_name="c.onnx")  # the same content again
    assert pa.stat().st_ino == inode and pa.read_bytes() == b"same bytes"
    # the source file changing later does not change the stored version
    src = tmp_path / "src" / "m.onnx"
    src.write_bytes(b"changed")
    assert pa.read_bytes() == b"same bytes"
    assert not list((tmp_path / "models" / "blobs").glob(".incoming-*"))
    # a temporary file a crash left behind is removed at the next open; the blobs stay
    (tmp_path / "models" / "blobs" / ".incoming-abc").write_bytes(b"partial")
    again = reg(tmp_path, db)
    assert not list((tmp_path / "models" / "blobs").glob(".incoming-*"))
    assert again.resolve("a", "1").path.read_bytes() == b"same bytes"


def test_alias_moves_history_and_rollback(tmp_path: Path, db: store.Store) -> None:
    r = reg(tmp_path, db)
    for content in (b"1", b"2", b"3"):
        r.register("m", content, file_name="m.onnx")
    r.set_alias("m", "champion", 1, actor="alice", reason="first")
    r.set_alias("m", "champion", 2, actor="bob", reason="better rmse")
    r.set_alias("m", "challenger", 3, actor="bob")
    assert r.resolve("m").version == 2
    ev = r.rollback("m", "champion", actor="carol", reason="p&l dropped")
    assert (ev.version, ev.previous, ev.actor, ev.reason) == (1, 2, "carol", "p&l dropped")
    assert r.resolve("m").version == 1
    hist = [(e.alias, e.version, e.previous, e.actor) for e in r.alias_history("m", "champion")]
    assert hist == [
        ("champion", 1, 0, "alice"),
        ("champion", 2, 1, "bob"),
        ("champion", 1, 2, "carol"),
    ]
    assert all(
        a.time_ns <= b.time_ns
        for a, b in zip(r.alias_history("m"), r.alias_history("m")[1:], strict=False)
    )
    # a removed alias comes back by rollback
    r.remove_alias("m", "challenger", actor="bob", reason="bad")
    with pytest.raises(NotFoundError, match="challenger"):
        r.resolve("m", "challenger")
    r.rollback("m", "challenger", actor="bob")
    assert r.resolve("m", "challenger").version == 3
    # an alias set once has nowhere to go back to
    r.set_alias("m", "staging", 3, actor="bob")
    with pytest.raises(PreconditionError, match="staging"):
        r.rollback("m", "staging", actor="bob")
    # the history survives reopening
    again = reg(tmp_path, db)
    assert again.alias_history("m") == r.alias_history("m")
    assert again.aliases("m") == {"champion": 1, "challenger": 3, "staging": 3}
    again.rollback("m", "champion", actor="dave")
    assert again.resolve("m").version == 2


def test_lineage_parent_and_git_commit(tmp_path: Path, db: store.Store) -> None:
    r = reg(tmp_path, db)
    r.register("m", b"1", file_name="m.onnx")
    r.register("m", b"2", file_name="m.onnx", lineage=Lineage(parent_version=1, seed=-3))
    assert r.lineage("m", 2).parent_version == 1 and r.lineage("m", 2).seed == -3
    with pytest.raises(NotFoundError, match=r"lineage\.parent_version"):
        r.register("m", b"3", file_name="m.onnx", lineage=Lineage(parent_version=9))
    commit = git_commit(Path(__file__).parent)
    assert len(commit.removesuffix("-dirty")) == 40
    assert git_commit(tmp_path) == ""


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"name": "bad name"}, "name"),
        ({"name": "../x"}, "name"),
        ({"file_name": "m.txt"}, "platform"),
        ({"file_name": "a/b.onnx"}, "file_name"),
        ({"platform": "Bad!"}, "platform"),
        ({"metrics": {"rmse": float("nan")}}, "metrics['rmse']"),
        ({"metrics": {"rmse": "low"}}, "metrics['rmse']"),
        ({"reference": {"x": np.array([1.0, np.inf])}}, "reference['x']"),
        ({"reference": {"x": np.array(["a"])}}, "reference['x']"),
        ({"reference": {}}, "reference"),
        ({"config": {"sha256": "x"}}, "config['sha256']"),
        ({"config": {"max_batch_size": 64}}, "config['max_batch_size']"),
    ],
)
def test_bad_registrations_name_the_field(
    tmp_path: Path, db: store.Store, kwargs: dict[str, object], field: str
) -> None:
    r = reg(tmp_path, db)
    args: dict[str, object] = {"name": "m", "file_name": "m.onnx", **kwargs}
    name = args.pop("name")
    with pytest.raises(ValueError, match=r"^" + re.escape(field)):
        r.register(name, b"x", **args)  # type: ignore[arg-type]
    assert r.models() == []


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"data_start": "yesterday"}, "lineage.data_start"),
        ({"data_start": "2024-02-01", "data_end": "2024-01-01"}, "lineage.data_end"),
        ({"seed": 1 << 64}, "lineage.seed"),
        ({"params": {"x": [1, 2]}}, "lineage.params"),
        ({"params": {"x": float("inf")}}, "lineage.params"),
        ({"parent_version": 0}, "lineage.parent_version"),
    ],
)
def test_bad_lineage_names_the_field(kwargs: dict[str, object], field: str) -> None:
    with pytest.raises(ValueError, match=f"^{field}"):
        Lineage(**kwargs)  # type: ignore[arg-type]


def test_unknown_models_versions_and_aliases_are_not_found(tmp_path: Path, db: store.Store) -> None:
    r = reg(tmp_path, db)
    with pytest.raises(NotFoundError, match="'nope'"):
        r.resolve("nope")
    r.register("m", b"1", file_name="m.onnx")
    with pytest.raises(NotFoundError, match="no version 5"):
        r.resolve("m", "5")
    with pytest.raises(NotFoundError, match="no alias 'gold'"):
        r.resolve("m", "gold")
    with pytest.raises(ValueError, match=r"^version"):
        r.resolve("m", "Gold!")
    with pytest.raises(NotFoundError, match="no version 2"):
        r.set_alias("m", "champion", 2, actor="a")
    with pytest.raises(ValueError, match=r"^actor"):
        r.set_alias("m", "champion", 1, actor="")
    with pytest.raises(ValueError, match=r"^alias"):
        r.set_alias("m", "7", 1, actor="a")
    with pytest.raises(NotFoundError, match="alias"):
        r.rollback("m", "champion", actor="a")
    assert r.alias_history("m") == []
