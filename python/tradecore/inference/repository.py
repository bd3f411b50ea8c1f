"""A model repository directory in Triton's layout, as a :class:`ModelSource`.

::

    <root>/<model>/config.json          optional: {"max_batch_size": 64, "platform": ...,
                                                    "aliases": {"champion": 2}, ...}
    <root>/<model>/<version>/model.onnx  one folder per version, a positive integer

A version folder counts once it holds the model file (``default_model_filename`` in the config,
else ``model.onnx`` or ``model.plan``); its platform follows from the file (``onnxruntime_onnx``,
``tensorrt_plan``) unless the config names one. The config's scalar entries are passed on as
:attr:`ModelVersion.config` (as text); ``aliases`` maps alias names to versions. The directory is
read on every call, so models copied in later are found without a restart.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from tradecore.errors import NotFoundError, quote
from tradecore.inference.types import ModelVersion

# Model names: a path segment of letters, digits, '_', '-', '.', not starting with '.'.
_MODEL_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.\-]{0,127}$")
_PLATFORMS = {"model.onnx": "onnxruntime_onnx", "model.plan": "tensorrt_plan"}
_SUFFIX_PLATFORMS = {".onnx": "onnxruntime_onnx", ".plan": "tensorrt_plan"}
CONFIG_FILE = "config.json"


def check_model_name(name: str) -> str:
    """``name`` when it can name a model (one path segment); ValueError naming it otherwise."""
    if not isinstance(name, str) or not _MODEL_NAME.match(name):
        raise ValueError(
            f"model name {quote(name)}: 1-128 letters, digits, '_', '-' or '.', not starting "
            "with '.'"
        )
    return name


class DirectorySource:
    """Models stored as ``<root>/<name>/<version>/model.onnx`` (implements
    :class:`tradecore.inference.types.ModelSource`). ``root`` need not exist yet: an absent
    directory is an empty repository."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)

    def __repr__(self) -> str:
        return f"DirectorySource({str(self.root)!r})"

    def _config(self, name: str) -> dict[str, Any]:
        path = self.root / name / CONFIG_FILE
        if not path.is_file():
            return {}
        try:
            data = json.loads(path.read_text())
        except (OSError, ValueError) as exc:
            raise ValueError(f"model {name!r}: {CONFIG_FILE} is not valid JSON: {exc}") from None
        if not isinstance(data, dict):
            raise ValueError(f"model {name!r}: {CONFIG_FILE} must hold a JSON object")
        return data

    def _versions(self, name: str, config: dict[str, Any]) -> dict[int, ModelVersion]:
        folder = self.root / name
        aliases_cfg = config.get("aliases", {})
        if not isinstance(aliases_cfg, dict):
            raise ValueError(f"model {name!r}: {CONFIG_FILE} 'aliases' must be an object")
        text = {
            k: str(v).lower() if isinstance(v, bool) else str(v)
            for k, v in config.items()
            if isinstance(v, str | int | float | bool)
        }
        filename = text.get("default_model_filename")
        out: dict[int, ModelVersion] = {}
        if not folder.is_dir():
            return out
        for entry in folder.iterdir():
            if not entry.is_dir() or not entry.name.isdigit() or int(entry.name) < 1:
                continue
            version = int(entry.name)
            candidates = [filename] if filename else list(_PLATFORMS)
            for file in candidates:
                path = entry / file
                if path.is_file():
                    platform = text.get("platform") or _SUFFIX_PLATFORMS.get(
                        path.suffix, "onnxruntime_onnx"
                    )
                    aliases = tuple(
                        sorted(a for a, v in aliases_cfg.items() if str(v) == str(version))
                    )
                    out[version] = ModelVersion(name, version, path, platform, aliases, text)
                    break
        return out

    def resolve(self, name: str, ref: str | None = None) -> ModelVersion:
        check_model_name(name)
        config = self._config(name)
        versions = self._versions(name, config)
        if not versions:
            raise NotFoundError(f"model {name!r} is not in the repository {str(self.root)!r}")
        if ref is None or ref == "":
            champion = [v for v in versions.values() if "champion" in v.aliases]
            return champion[0] if champion else versions[max(versions)]
        if ref.isdigit():
            found = versions.get(int(ref))
            if found is None:
                raise NotFoundError(
                    f"model {name!r} has no version {quote(ref)} (versions {sorted(versions)})"
                )
            return found
        for v in versions.values():
            if ref in v.aliases:
                return v
        raise NotFoundError(f"model {name!r} has no version or alias {quote(ref)}")

    def index(self) -> list[ModelVersion]:
        if not self.root.is_dir():
            return []
        out: list[ModelVersion] = []
        for entry in sorted(self.root.iterdir()):
            if entry.is_dir() and _MODEL_NAME.match(entry.name):
                versions = self._versions(entry.name, self._config(entry.name))
                out += [versions[v] for v in sorted(versions)]
        return out
