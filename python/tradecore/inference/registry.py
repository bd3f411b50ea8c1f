"""The model registry: versions, aliases with their history, lineage, metrics and the reference
data drift is measured against.

Storage (docs/architecture.md, "Model registry"):

* model files and reference data are *blobs* under ``<root>/blobs/sha256/<hex><suffix>``,
  named by the SHA-256 of their bytes: written once through a temporary file and a hard link
  (which fails rather than replace an existing name), then made read-only. The same bytes
  registered twice share one blob; a blob is never rewritten.
* the catalogue is three ClickHouse tables in the caller's :class:`tradecore.store.Store`
  (chDB under the data directory by default): ``model_versions`` (one row per version, never
  updated), ``model_alias_events`` (every alias move or removal, with who, when and why:
  append-only, so an alias's whole history is kept and a rollback is one more move) and
  ``model_traffic_policies`` (written by :mod:`tradecore.inference.rollout`).

A blob is written before its row, so a crash between the two leaves an unused blob and no row
that names a missing file. The registry keeps the catalogue in memory (read at start), so
:meth:`ModelRegistry.resolve` and :meth:`ModelRegistry.index` never touch the store: they
are cheap enough for the serving path. Writes go to the store first and to memory after it
succeeded; one thread at a time may write (the store's calls are not concurrent).

Migration versions 1301-1309 of the store's ``tradecore_migrations`` belong to this module and
:mod:`tradecore.inference.rollout`.
"""

from __future__ import annotations

import hashlib
import io
import json
import math
import os
import re
import subprocess
import tempfile
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from tradecore.errors import NotFoundError, PreconditionError, quote
from tradecore.inference.types import ModelVersion
from tradecore.store import Migration, Store

CHAMPION = "champion"
CHALLENGER = "challenger"

VERSIONS_TABLE = "model_versions"
ALIAS_TABLE = "model_alias_events"

MIGRATIONS = (
    Migration(
        1301,
        "model_versions",
        (
            f"""CREATE TABLE IF NOT EXISTS {VERSIONS_TABLE} (
                name String,
                version UInt32,
                sha256 String,
                file_name String,
                platform LowCardinality(String),
                size_bytes UInt64,
                reference_sha256 String,
                description String,
                lineage String,
                metrics String,
                config String,
                created_ns Int64,
                created_by String
            ) ENGINE = MergeTree ORDER BY (name, version)""",
        ),
    ),
    Migration(
        1302,
        "model_alias_events",
        (
            f"""CREATE TABLE IF NOT EXISTS {ALIAS_TABLE} (
                seq UInt64,
                name String,
                alias String,
                version UInt32,
                previous UInt32,
                time_ns Int64,
                actor String,
                reason String
            ) ENGINE = MergeTree ORDER BY (name, alias, seq)""",
        ),
    ),
)

_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,127}$")
# Aliases start with a letter, so a reference that is all digits is always a version number.
_ALIAS_RE = re.compile(r"^[a-z][a-z0-9_-]{0,63}$")
_PLATFORM_RE = re.compile(r"^[a-z][a-z0-9_]{0,63}$")
_SUFFIX_RE = re.compile(r"^\.[A-Za-z0-9]{1,16}$")
PLATFORMS_BY_SUFFIX = {
    ".onnx": "onnxruntime_onnx",
    ".plan": "tensorrt_plan",
    ".engine": "tensorrt_plan",
}
MAX_TEXT = 4096
_INT64 = 1 << 63

Param = str | int | float | bool


def validate_model_name(name: object, field_name: str = "name") -> str:
    """A model name: letters, digits, ``_`` and ``-``, starting with a letter or digit, at most
    128 characters (so it is a NATS subject token and a URL path segment as it is)."""
    if not isinstance(name, str) or not _NAME_RE.match(name):
        raise ValueError(
            f"{field_name}: a model name is 1-128 letters, digits, '_' or '-' starting with a "
            f"letter or digit, got {quote(name)}"
        )
    return name


def validate_alias(alias: object, field_name: str = "alias") -> str:
    if not isinstance(alias, str) or not _ALIAS_RE.match(alias):
        raise ValueError(
            f"{field_name}: an alias is 1-64 lowercase letters, digits, '_' or '-' starting "
            f"with a letter, got {quote(alias)}"
        )
    return alias


def _text(value: object, field_name: str, *, required: bool = False) -> str:
    if not isinstance(value, str):
        raise ValueError(f"{field_name}: must be text, got {quote(value)}")
    if required and not value.strip():
        raise ValueError(f"{field_name}: must not be empty")
    if len(value) > MAX_TEXT:
        raise ValueError(f"{field_name}: at most {MAX_TEXT} characters, got {len(value)}")
    return value


def _timestamp(value: str, field_name: str) -> datetime | None:
    _text(value, field_name)
    if not value:
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise ValueError(
            f"{field_name}: an ISO 8601 date or time (2024-01-31, 2024-01-31T09:30:00Z), got "
            f"{quote(value)}"
        ) from None
    return parsed


@dataclass(frozen=True)
class Lineage:
    """Where a model version comes from. ``data_start``/``data_end``: the training data's
    range as ISO 8601 dates or times; ``code_version``: the commit of the training code
    (:func:`git_commit`); ``seed``: the training seed; ``params``: hyper-parameters (text,
    numbers, booleans); ``parent_version``: the version this one was trained from, if any."""

    data_source: str = ""
    data_start: str = ""
    data_end: str = ""
    code_version: str = ""
    seed: int | None = None
    params: Mapping[str, Param] = field(default_factory=dict)
    parent_version: int | None = None

    def __post_init__(self) -> None:
        _text(self.data_source, "lineage.data_source")
        start = _timestamp(self.data_start, "lineage.data_start")
        end = _timestamp(self.data_end, "lineage.data_end")
        if start is not None and end is not None:
            if (start.tzinfo is None) != (end.tzinfo is None):
                raise ValueError(
                    "lineage.data_end: give both ends of the range with a time zone or neither"
                )
            if end < start:
                raise ValueError(
                    f"lineage.data_end: {self.data_end} is before data_start {self.data_start}"
                )
        _text(self.code_version, "lineage.code_version")
        if self.seed is not None and (
            isinstance(self.seed, bool)
            or not isinstance(self.seed, int)
            or not -_INT64 <= self.seed < _INT64
        ):
            raise ValueError(f"lineage.seed: a 64-bit integer, got {quote(self.seed)}")
        if not isinstance(self.params, Mapping):
            raise ValueError(f"lineage.params: a mapping, got {quote(self.params)}")
        for key, value in self.params.items():
            if not isinstance(key, str) or not key:
                raise ValueError(f"lineage.params: keys are non-empty text, got {quote(key)}")
            where = f"lineage.params[{key!r}]"
            if isinstance(value, float) and not math.isfinite(value):
                raise ValueError(f"{where}: must be finite, got {value}")
            if not isinstance(value, str | int | float | bool):
                raise ValueError(f"{where}: text, a number or a boolean, got {quote(value)}")
            if isinstance(value, str):
                _text(value, where)
        if self.parent_version is not None and (
            isinstance(self.parent_version, bool)
            or not isinstance(self.parent_version, int)
            or self.parent_version < 1
        ):
            raise ValueError(
                f"lineage.parent_version: a version number >= 1, got {quote(self.parent_version)}"
            )

    def to_json(self) -> str:
        return json.dumps(
            {
                "data_source": self.data_source,
                "data_start": self.data_start,
                "data_end": self.data_end,
                "code_version": self.code_version,
                "seed": self.seed,
                "params": dict(self.params),
                "parent_version": self.parent_version,
            },
            sort_keys=True,
        )

    @classmethod
    def from_json(cls, text: str) -> Lineage:
        d = json.loads(text)
        return cls(
            data_source=d["data_source"],
            data_start=d["data_start"],
            data_end=d["data_end"],
            code_version=d["code_version"],
            seed=d["seed"],
            params=d["params"],
            parent_version=d["parent_version"],
        )


@dataclass(frozen=True)
class VersionInfo:
    """One registered version as the catalogue holds it."""

    name: str
    version: int
    sha256: str
    file_name: str
    platform: str
    size_bytes: int
    path: Path
    lineage: Lineage
    metrics: Mapping[str, float]
    config: Mapping[str, str]
    description: str
    reference_sha256: str
    reference_path: Path | None
    created_ns: int
    created_by: str


@dataclass(frozen=True)
class AliasEvent:
    """One move of an alias: to ``version`` (0: the alias was removed) from ``previous`` (0:
    it did not point anywhere), by ``actor`` at ``time_ns`` because ``reason``."""

    seq: int
    name: str
    alias: str
    version: int
    previous: int
    time_ns: int
    actor: str
    reason: str


@dataclass
class _Model:
    versions: dict[int, VersionInfo] = field(default_factory=dict)
    aliases: dict[str, int] = field(default_factory=dict)
    history: list[AliasEvent] = field(default_factory=list)


def git_commit(path: str | Path = ".") -> str:
    """The commit checked out at ``path`` (with ``-dirty`` when tracked files have
    uncommitted changes), or "" when ``path`` is not in a git work tree or git is absent."""
    try:
        head = subprocess.run(
            ["git", "-C", str(path), "rev-parse", "HEAD"],
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", str(path), "status", "--porcelain", "--untracked-files=no"],
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return ""
    return f"{head}-dirty" if dirty else head


class BlobStore:
    """Content-addressed files: ``<root>/sha256/<hex><suffix>``, never overwritten. The one
    process that owns the registry owns the directory: temporary files a crash left behind
    (``.incoming-*``, never linked to a name) are removed when it is opened."""

    def __init__(self, root: Path) -> None:
        self.root = root
        (root / "sha256").mkdir(parents=True, exist_ok=True)
        for stale in root.glob(".incoming-*"):
            stale.unlink(missing_ok=True)

    def path(self, sha256: str, suffix: str) -> Path:
        return self.root / "sha256" / f"{sha256}{suffix}"

    def put_file(self, source: Path, suffix: str) -> tuple[str, int]:
        """Copy ``source`` in (hashing as it copies); (sha256, size)."""
        digest = hashlib.sha256()
        size = 0
        fd, tmp = tempfile.mkstemp(dir=self.root, prefix=".incoming-")
        try:
            with os.fdopen(fd, "wb") as out, source.open("rb") as src:
                while chunk := src.read(1 << 20):
                    digest.update(chunk)
                    out.write(chunk)
                    size += len(chunk)
                out.flush()
                os.fsync(out.fileno())
            self._publish(Path(tmp), digest.hexdigest(), suffix)
        finally:
            Path(tmp).unlink(missing_ok=True)
        return digest.hexdigest(), size

    def put_bytes(self, data: bytes, suffix: str) -> tuple[str, int]:
        sha = hashlib.sha256(data).hexdigest()
        fd, tmp = tempfile.mkstemp(dir=self.root, prefix=".incoming-")
        try:
            with os.fdopen(fd, "wb") as out:
                out.write(data)
                out.flush()
                os.fsync(out.fileno())
            self._publish(Path(tmp), sha, suffix)
        finally:
            Path(tmp).unlink(missing_ok=True)
        return sha, len(data)

    def _publish(self, tmp: Path, sha: str, suffix: str) -> None:
        final = self.path(sha, suffix)
        os.chmod(tmp, 0o444)
        try:
            # A hard link never replaces an existing name: the first writer of a content wins
            # and the same content written again is the same file.
            os.link(tmp, final)
        except FileExistsError:
            return
        dir_fd = os.open(final.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)


def _reference_npz(reference: Mapping[str, npt.ArrayLike]) -> bytes:
    if not isinstance(reference, Mapping) or not reference:
        raise ValueError("reference: a non-empty mapping of tensor name to array")
    arrays: dict[str, npt.NDArray[Any]] = {}
    for key, value in reference.items():
        if not isinstance(key, str) or not key or len(key) > 256:
            raise ValueError(f"reference: tensor names are 1-256 characters, got {quote(key)}")
        arr = np.asarray(value)
        where = f"reference[{key!r}]"
        if arr.dtype.kind not in "biuf":
            raise ValueError(f"{where}: a numeric or boolean array, got dtype {arr.dtype}")
        if arr.size == 0:
            raise ValueError(f"{where}: must not be empty")
        if arr.dtype.kind == "f" and not np.isfinite(arr).all():
            raise ValueError(f"{where}: contains NaN or infinity")
        arrays[key] = arr
    buf = io.BytesIO()
    np.savez(buf, allow_pickle=False, **arrays)
    return buf.getvalue()


def _metrics(metrics: Mapping[str, float]) -> dict[str, float]:
    if not isinstance(metrics, Mapping):
        raise ValueError(f"metrics: a mapping of name to number, got {quote(metrics)}")
    out: dict[str, float] = {}
    for key, value in metrics.items():
        if not isinstance(key, str) or not key or len(key) > 256:
            raise ValueError(f"metrics: names are 1-256 characters, got {quote(key)}")
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ValueError(f"metrics[{key!r}]: a number, got {quote(value)}")
        if not math.isfinite(value):
            raise ValueError(f"metrics[{key!r}]: must be finite, got {value}")
        out[key] = float(value)
    return out


_RESERVED_CONFIG = ("sha256", "file_name", "description", "reference")


def _config(config: Mapping[str, str]) -> dict[str, str]:
    if not isinstance(config, Mapping):
        raise ValueError(f"config: a mapping of text to text, got {quote(config)}")
    out: dict[str, str] = {}
    for key, value in config.items():
        if not isinstance(key, str) or not key or len(key) > 256:
            raise ValueError(f"config: keys are 1-256 characters, got {quote(key)}")
        if key in _RESERVED_CONFIG:
            raise ValueError(
                f"config[{key!r}]: set by the registry ({', '.join(_RESERVED_CONFIG)})"
            )
        if not isinstance(value, str):
            raise ValueError(f"config[{key!r}]: text, got {quote(value)}")
        out[key] = _text(value, f"config[{key!r}]")
    return out


def _suffix_of(file_name: str) -> str:
    suffix = Path(file_name).suffix
    if suffix and not _SUFFIX_RE.match(suffix):
        raise ValueError(f"file_name: suffix {quote(suffix)} is not 1-16 letters or digits")
    return suffix.lower()


class ModelRegistry:
    """Models, their versions and aliases; a :class:`tradecore.inference.types.ModelSource`.

    ``root`` holds the blobs; ``store`` the catalogue (its migrations are applied here)."""

    def __init__(self, root: str | Path, store: Store, *, clock: Any = time.time_ns) -> None:
        self.root = Path(root)
        self.store = store
        self.blobs = BlobStore(self.root / "blobs")
        self._clock = clock
        self._lock = threading.Lock()
        self._models: dict[str, _Model] = {}
        self._seq = 0
        store.migrate(MIGRATIONS)
        self._load()

    # -- loading -----------------------------------------------------------------------------

    def _load(self) -> None:
        rows = self.store.query_rows(
            "SELECT name, version, sha256, file_name, platform, size_bytes, reference_sha256, "
            f"description, lineage, metrics, config, created_ns, created_by FROM {VERSIONS_TABLE} "
            "ORDER BY name, version"
        )
        for r in rows:
            name, version = str(r[0]), int(r[1])
            file_name, ref_sha = str(r[3]), str(r[6])
            info = VersionInfo(
                name=name,
                version=version,
                sha256=str(r[2]),
                file_name=file_name,
                platform=str(r[4]),
                size_bytes=int(r[5]),
                path=self.blobs.path(str(r[2]), _suffix_of(file_name)),
                lineage=Lineage.from_json(str(r[8])),
                metrics=json.loads(str(r[9])),
                config=json.loads(str(r[10])),
                description=str(r[7]),
                reference_sha256=ref_sha,
                reference_path=self.blobs.path(ref_sha, ".npz") if ref_sha else None,
                created_ns=int(r[11]),
                created_by=str(r[12]),
            )
            self._models.setdefault(name, _Model()).versions[version] = info
        events = self.store.query_rows(
            "SELECT seq, name, alias, version, previous, time_ns, actor, reason "
            f"FROM {ALIAS_TABLE} ORDER BY seq"
        )
        for e in events:
            ev = AliasEvent(
                int(e[0]), str(e[1]), str(e[2]), int(e[3]), int(e[4]), int(e[5]), str(e[6]),
                str(e[7]),
            )  # fmt: skip
            self._apply(ev)
            self._seq = max(self._seq, ev.seq)

    def _apply(self, ev: AliasEvent) -> None:
        model = self._models.setdefault(ev.name, _Model())
        model.history.append(ev)
        if ev.version:
            model.aliases[ev.alias] = ev.version
        else:
            model.aliases.pop(ev.alias, None)

    # -- reads (memory only) -----------------------------------------------------------------

    def _model(self, name: str) -> _Model:
        validate_model_name(name)
        model = self._models.get(name)
        if model is None or not model.versions:
            raise NotFoundError(f"model {name!r} is not registered")
        return model

    def models(self) -> list[str]:
        with self._lock:
            return sorted(n for n, m in self._models.items() if m.versions)

    def versions(self, name: str) -> list[VersionInfo]:
        with self._lock:
            model = self._model(name)
            return [model.versions[v] for v in sorted(model.versions)]

    def version(self, name: str, version: int) -> VersionInfo:
        with self._lock:
            return self._version(self._model(name), name, version)

    @staticmethod
    def _version(model: _Model, name: str, version: int) -> VersionInfo:
        try:
            return model.versions[version]
        except KeyError:
            raise NotFoundError(
                f"version: model {name!r} has no version {version} (it has "
                f"{min(model.versions)}..{max(model.versions)})"
            ) from None

    def aliases(self, name: str) -> dict[str, int]:
        with self._lock:
            return dict(self._model(name).aliases)

    def alias_history(self, name: str, alias: str | None = None) -> list[AliasEvent]:
        """Every move of the model's aliases (of ``alias`` only when given), oldest first."""
        with self._lock:
            model = self._model(name)
            if alias is not None:
                validate_alias(alias)
            return [e for e in model.history if alias is None or e.alias == alias]

    def lineage(self, name: str, version: int) -> Lineage:
        return self.version(name, version).lineage

    def default_version(self, name: str) -> int:
        """The version a request without a version gets: the champion, else the highest."""
        with self._lock:
            model = self._model(name)
            return model.aliases.get(CHAMPION) or max(model.versions)

    def resolve(self, name: str, ref: str | None = None) -> ModelVersion:
        with self._lock:
            model = self._model(name)
            if ref is None or ref == "":
                version = model.aliases.get(CHAMPION) or max(model.versions)
            elif isinstance(ref, str) and ref.isdigit():
                version = int(ref)
                self._version(model, name, version)
            else:
                validate_alias(ref, "version")
                if ref not in model.aliases:
                    raise NotFoundError(f"version: model {name!r} has no alias {ref!r}")
                version = model.aliases[ref]
            return self._model_version(model, model.versions[version])

    def index(self) -> list[ModelVersion]:
        with self._lock:
            return [
                self._model_version(m, m.versions[v])
                for _, m in sorted(self._models.items())
                for v in sorted(m.versions)
            ]

    @staticmethod
    def _model_version(model: _Model, info: VersionInfo) -> ModelVersion:
        aliases = tuple(sorted(a for a, v in model.aliases.items() if v == info.version))
        config = {**info.config, "sha256": info.sha256, "file_name": info.file_name}
        if info.description:
            config["description"] = info.description
        if info.reference_path is not None:
            config["reference"] = str(info.reference_path)
        return ModelVersion(
            name=info.name,
            version=info.version,
            path=info.path,
            platform=info.platform,
            aliases=aliases,
            config=config,
        )

    def reference(self, name: str, version: int) -> dict[str, npt.NDArray[Any]]:
        """The reference data registered with a version (tensor name → array)."""
        info = self.version(name, version)
        if info.reference_path is None:
            raise NotFoundError(f"version: model {name!r} version {version} has no reference data")
        with np.load(info.reference_path, allow_pickle=False) as npz:
            return {k: npz[k] for k in npz.files}

    # -- writes -------------------------------------------------------------------------------

    def register(
        self,
        name: str,
        model_file: str | Path | bytes,
        *,
        file_name: str = "",
        platform: str = "",
        lineage: Lineage | None = None,
        metrics: Mapping[str, float] | None = None,
        reference: Mapping[str, npt.ArrayLike] | None = None,
        config: Mapping[str, str] | None = None,
        description: str = "",
        actor: str = "",
    ) -> int:
        """Store a new version of ``name`` and return its number (1 for a new model).

        ``model_file`` is a path, or the file's bytes with ``file_name`` naming it. The
        platform follows the file's suffix (``.onnx``: ``onnxruntime_onnx``; ``.plan`` and
        ``.engine``: ``tensorrt_plan``) unless ``platform`` is given. ``reference`` (tensor
        name → array) is what drift is measured against, stored as ``.npz`` beside the model.
        ``config``: the serving settings of the version (text to text, as a Triton-layout
        repository's ``config.json``, e.g. ``max_batch_size``), in :attr:`ModelVersion.config`
        beside ``sha256``, ``file_name``, ``description`` and ``reference``."""
        validate_model_name(name)
        if isinstance(model_file, bytes):
            _text(file_name, "file_name", required=True)
            if not model_file:
                raise ValueError("model: the model file is empty")
        else:
            source = Path(model_file)
            file_name = file_name or source.name
            if not source.is_file():
                raise ValueError(f"model_file: {quote(str(source))} is not a readable file")
            if source.stat().st_size == 0:
                raise ValueError(f"model_file: {quote(str(source))} is empty")
        if "/" in file_name or file_name in (".", ".."):
            raise ValueError(f"file_name: a file name without directories, got {quote(file_name)}")
        suffix = _suffix_of(file_name)
        if platform:
            if not _PLATFORM_RE.match(platform):
                raise ValueError(
                    f"platform: lowercase letters, digits and '_', got {quote(platform)}"
                )
        else:
            try:
                platform = PLATFORMS_BY_SUFFIX[suffix]
            except KeyError:
                raise ValueError(
                    f"platform: cannot tell the runtime of {quote(file_name)} from its suffix "
                    f"(known: {', '.join(PLATFORMS_BY_SUFFIX)}); give the platform"
                ) from None
        lineage = lineage if lineage is not None else Lineage()
        if not isinstance(lineage, Lineage):
            raise ValueError(f"lineage: a Lineage, got {quote(lineage)}")
        metric_values = _metrics(metrics or {})
        config_values = _config(config or {})
        npz = _reference_npz(reference) if reference is not None else None
        _text(description, "description")
        _text(actor, "actor")
        with self._lock:
            model = self._models.get(name)
            if lineage.parent_version is not None and (
                model is None or lineage.parent_version not in model.versions
            ):
                raise NotFoundError(
                    f"lineage.parent_version: model {name!r} has no version "
                    f"{lineage.parent_version}"
                )
            if isinstance(model_file, bytes):
                sha, size = self.blobs.put_bytes(model_file, suffix)
            else:
                sha, size = self.blobs.put_file(Path(model_file), suffix)
            ref_sha = self.blobs.put_bytes(npz, ".npz")[0] if npz is not None else ""
            version = max(model.versions) + 1 if model and model.versions else 1
            now = self._clock()
            row = (
                name, version, sha, file_name, platform, size, ref_sha, description,
                lineage.to_json(), json.dumps(metric_values, sort_keys=True),
                json.dumps(config_values, sort_keys=True), now, actor,
            )  # fmt: skip
            self.store.insert(
                VERSIONS_TABLE,
                [row],
                [
                    "name", "version", "sha256", "file_name", "platform", "size_bytes",
                    "reference_sha256", "description", "lineage", "metrics", "config", "created_ns",
                    "created_by",
                ],
            )  # fmt: skip
            self._models.setdefault(name, _Model()).versions[version] = VersionInfo(
                name=name,
                version=version,
                sha256=sha,
                file_name=file_name,
                platform=platform,
                size_bytes=size,
                path=self.blobs.path(sha, suffix),
                lineage=lineage,
                metrics=metric_values,
                config=config_values,
                description=description,
                reference_sha256=ref_sha,
                reference_path=self.blobs.path(ref_sha, ".npz") if ref_sha else None,
                created_ns=now,
                created_by=actor,
            )
            return version

    def _move(self, name: str, alias: str, version: int, actor: str, reason: str) -> AliasEvent:
        """Record and apply one alias move (caller holds the lock)."""
        model = self._models[name]
        ev = AliasEvent(
            seq=self._seq + 1,
            name=name,
            alias=alias,
            version=version,
            previous=model.aliases.get(alias, 0),
            time_ns=self._clock(),
            actor=actor,
            reason=reason,
        )
        self.store.insert(
            ALIAS_TABLE,
            [(ev.seq, name, alias, version, ev.previous, ev.time_ns, actor, reason)],
            ["seq", "name", "alias", "version", "previous", "time_ns", "actor", "reason"],
        )
        self._seq = ev.seq
        self._apply(ev)
        return ev

    def set_alias(
        self, name: str, alias: str, version: int, *, actor: str, reason: str = ""
    ) -> AliasEvent:
        """Point ``alias`` at ``version`` (recorded with who and why, even when it already
        pointed there)."""
        validate_alias(alias)
        _text(actor, "actor", required=True)
        _text(reason, "reason")
        if isinstance(version, bool) or not isinstance(version, int) or version < 1:
            raise ValueError(f"version: a version number >= 1, got {quote(version)}")
        with self._lock:
            self._version(self._model(name), name, version)
            return self._move(name, alias, version, actor, reason)

    def remove_alias(self, name: str, alias: str, *, actor: str, reason: str = "") -> AliasEvent:
        validate_alias(alias)
        _text(actor, "actor", required=True)
        _text(reason, "reason")
        with self._lock:
            if alias not in self._model(name).aliases:
                raise NotFoundError(f"alias: model {name!r} has no alias {alias!r}")
            return self._move(name, alias, 0, actor, reason)

    def rollback(self, name: str, alias: str, *, actor: str, reason: str = "") -> AliasEvent:
        """Move ``alias`` back to where it pointed before its latest move (a removed alias
        comes back); the rollback is recorded as a move like any other."""
        validate_alias(alias)
        _text(actor, "actor", required=True)
        _text(reason, "reason")
        with self._lock:
            model = self._model(name)
            moves = [e for e in model.history if e.alias == alias]
            if not moves:
                raise NotFoundError(f"alias: model {name!r} has no alias {alias!r}")
            previous = moves[-1].previous
            if previous == 0:
                raise PreconditionError(
                    f"alias: {alias!r} of model {name!r} pointed nowhere before its latest move "
                    "(nothing to roll back to)"
                )
            return self._move(name, alias, previous, actor, reason or "rollback")


__all__ = [
    "CHALLENGER",
    "CHAMPION",
    "MIGRATIONS",
    "PLATFORMS_BY_SUFFIX",
    "AliasEvent",
    "BlobStore",
    "Lineage",
    "ModelRegistry",
    "VersionInfo",
    "git_commit",
    "validate_alias",
    "validate_model_name",
]
