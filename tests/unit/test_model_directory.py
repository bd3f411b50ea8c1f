"""DirectorySource: a Triton-layout model repository as a ModelSource."""

from __future__ import annotations

from pathlib import Path

import pytest
from tradecore.errors import NotFoundError
from tradecore.inference import ModelSource
from tradecore.inference.repository import DirectorySource

from tests.inference_models import small_mlp, write


def test_versions_aliases_and_config(tmp_path: Path) -> None:
    model = small_mlp()
    write(tmp_path, "mlp", 1, model)
    write(tmp_path, "mlp", 3, model, {"max_batch_size": 16, "aliases": {"champion": 1}})
    (tmp_path / "mlp" / "7").mkdir()  # no model file: not a version
    (tmp_path / "mlp" / "notes").mkdir()
    write(tmp_path, "other", 2, model)
    src = DirectorySource(tmp_path)
    assert isinstance(src, ModelSource)
    assert [(v.name, v.version) for v in src.index()] == [("mlp", 1), ("mlp", 3), ("other", 2)]
    champion = src.resolve("mlp")
    assert (champion.version, champion.aliases) == (1, ("champion",))
    assert champion.config["max_batch_size"] == "16"
    assert champion.platform == "onnxruntime_onnx"
    assert src.resolve("mlp", "3").path == tmp_path / "mlp" / "3" / "model.onnx"
    assert src.resolve("mlp", "champion").version == 1
    assert src.resolve("other").version == 2  # no champion: the newest


def test_unknown_model_version_or_alias_is_not_found(tmp_path: Path) -> None:
    write(tmp_path, "mlp", 1, small_mlp())
    src = DirectorySource(tmp_path)
    with pytest.raises(NotFoundError, match="model 'nope' is not in the repository"):
        src.resolve("nope")
    with pytest.raises(NotFoundError, match=r"model 'mlp' has no version '9' \(versions \[1\]\)"):
        src.resolve("mlp", "9")
    with pytest.raises(NotFoundError, match="no version or alias 'challenger'"):
        src.resolve("mlp", "challenger")


def test_a_name_that_is_not_one_path_segment_is_refused(tmp_path: Path) -> None:
    src = DirectorySource(tmp_path)
    for bad in ("../etc", "a/b", ".hidden", ""):
        with pytest.raises(ValueError, match="model name"):
            src.resolve(bad)


def test_missing_root_is_an_empty_repository_and_bad_config_names_the_model(
    tmp_path: Path,
) -> None:
    assert DirectorySource(tmp_path / "absent").index() == []
    write(tmp_path, "mlp", 1, small_mlp())
    (tmp_path / "mlp" / "config.json").write_text("{nope")
    with pytest.raises(ValueError, match=r"model 'mlp': config\.json is not valid JSON"):
        DirectorySource(tmp_path).resolve("mlp")
