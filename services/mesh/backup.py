"""``tradecore backup`` / ``tradecore restore``: the data directory as one archive.

Everything the mesh keeps is under the data directory: JetStream's store (journals, fills, ticks
streams), the ClickHouse (chDB) databases, the model registry, the audit trail and its keys, the
gateway's configuration. A backup is taken with the mesh stopped (``tradecore down`` drains
every service, so everything acknowledged is on disk: the recovery point is the moment of the
``down``); it refuses while a supervisor runs. The archive (tar, gzip) holds ``MANIFEST.json``
first: every file's path, size, mode and SHA-256. ``restore`` checks the manifest against the
archive before writing anything, refuses a non-empty target, and restores the files with their
modes (key material stays 0600); logs and the supervisor's state file are left out of backups.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import os
import sys
import tarfile
import time
from pathlib import Path
from typing import Any

from .procs import running

MANIFEST = "MANIFEST.json"
FORMAT = 1
#: Not backed up: logs, and the running supervisor's state.
SKIP_DIRS = frozenset({"logs"})
SKIP_FILES = frozenset({"mesh.json", "mesh.lock"})


class BackupError(RuntimeError):
    """A backup or restore that cannot be done (the reason names the file or the condition)."""


def _inside(root: Path, path: Path) -> bool:
    return path == root or root in path.parents


def _walk(data: Path) -> tuple[list[Path], list[tuple[Path, str]]]:
    """The files to back up, and the symbolic links (ClickHouse links its tables into its
    store) with their targets: relative ones that stay inside the data directory."""
    files: list[Path] = []
    links: list[tuple[Path, str]] = []
    for root, dirs, names in os.walk(data, followlinks=False):
        here = Path(root)
        rel_root = here.relative_to(data)
        if rel_root.parts and rel_root.parts[0] in SKIP_DIRS:
            dirs.clear()
            continue
        for name in sorted(dirs + names):
            path = here / name
            if path.is_symlink():
                target = os.readlink(path)
                if Path(target).is_absolute() or not _inside(data, (here / target).resolve()):
                    raise BackupError(f"{path}: a link out of the data directory ({target})")
                links.append((path, target))
            elif name in names and not (not rel_root.parts and name in SKIP_FILES):
                files.append(path)
        dirs[:] = [d for d in dirs if not (here / d).is_symlink()]
    return sorted(files), sorted(links)


def _digest(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _mesh_running(data: Path) -> int | None:
    state = data / "mesh.json"
    try:
        info = json.loads(state.read_text())
    except (OSError, ValueError):
        return None
    pid = info.get("supervisor_pid")
    return pid if running(pid, info.get("supervisor_start")) else None


def backup(data: Path, out: Path) -> dict[str, Any]:
    """Write ``data`` into the archive ``out``; returns the manifest."""
    data = data.resolve()
    if not data.is_dir():
        raise BackupError(f"data directory {data} does not exist")
    pid = _mesh_running(data)
    if pid is not None:
        raise BackupError(
            f"the mesh is running (supervisor pid {pid}): run `tradecore down` first, so that "
            "everything acknowledged is on disk"
        )
    files, links = _walk(data)
    manifest: dict[str, Any] = {
        "format": FORMAT,
        "created_ns": time.time_ns(),
        "source": str(data),
        "files": [
            {
                "path": str(p.relative_to(data)),
                "size": p.stat().st_size,
                "mode": p.stat().st_mode & 0o777,
                "sha256": _digest(p),
            }
            for p in files
        ],
        "links": [{"path": str(p.relative_to(data)), "target": t} for p, t in links],
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".partial")
    with tarfile.open(tmp, "w:gz") as tar:
        raw = json.dumps(manifest, indent=1).encode()
        info = tarfile.TarInfo(MANIFEST)
        info.size, info.mode, info.mtime = len(raw), 0o600, int(time.time())
        tar.addfile(info, io.BytesIO(raw))
        for p in files:
            tar.add(p, arcname=f"data/{p.relative_to(data)}", recursive=False)
        # Links are restored from the manifest (checked there), not from tar members.
    tmp.chmod(0o600)  # it holds key material
    tmp.replace(out)
    return manifest


def restore(archive: Path, data: Path) -> dict[str, Any]:
    """Check ``archive`` and restore it into the empty (or absent) directory ``data``."""
    data = data.resolve()
    if data.exists() and any(data.iterdir()):
        raise BackupError(f"{data} is not empty: restore into a new or empty directory")
    try:
        tar = tarfile.open(archive, "r:gz")  # noqa: SIM115 (closed by the with below)
    except (OSError, tarfile.TarError) as exc:
        raise BackupError(f"{archive}: not a tradecore backup ({exc})") from None
    with tar:
        first = tar.next()
        if first is None or first.name != MANIFEST:
            raise BackupError(f"{archive}: no {MANIFEST} at its start")
        stream = tar.extractfile(first)
        assert stream is not None
        manifest = json.loads(stream.read())
        if manifest.get("format") != FORMAT:
            raise BackupError(f"{archive}: backup format {manifest.get('format')!r} unknown")
        expected = {f["path"]: f for f in manifest["files"]}
        members = {}
        for m in tar.getmembers()[1:]:
            rel = m.name.removeprefix("data/")
            if not m.isfile() or rel not in expected or Path(rel).is_absolute() or ".." in rel:
                raise BackupError(f"{archive}: unexpected member {m.name!r}")
            members[rel] = m
        missing = sorted(set(expected) - set(members))
        if missing:
            raise BackupError(f"{archive}: files of the manifest missing: {missing[:5]}")
        # Every file's content is checked before anything is written.
        for rel, m in members.items():
            f = tar.extractfile(m)
            assert f is not None
            h = hashlib.sha256()
            for block in iter(lambda f=f: f.read(1 << 20), b""):  # type: ignore[misc]
                h.update(block)
            if h.hexdigest() != expected[rel]["sha256"]:
                raise BackupError(f"{archive}: {rel} does not match its SHA-256 in the manifest")
        links: list[tuple[Path, str]] = []
        for link in manifest.get("links", []):
            path = data / str(link["path"])
            target = str(link["target"])
            if (
                Path(target).is_absolute()
                or not _inside(data, path.parent.resolve())
                or not _inside(data, (path.parent / target).resolve())
            ):
                raise BackupError(f"{archive}: link {link['path']!r} points out of the data")
            links.append((path, target))
        data.mkdir(parents=True, exist_ok=True)
        for rel, m in members.items():
            dest = data / rel
            dest.parent.mkdir(parents=True, exist_ok=True)
            f = tar.extractfile(m)
            assert f is not None
            with dest.open("wb") as w:
                for block in iter(lambda f=f: f.read(1 << 20), b""):  # type: ignore[misc]
                    w.write(block)
            dest.chmod(int(expected[rel]["mode"]))
        for path, link_target in links:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.symlink_to(link_target)
    return dict(manifest)


def backup_main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(
        prog="tradecore backup", description="Archive the data directory (mesh stopped)."
    )
    ap.add_argument("--data-dir", type=Path, default=Path(".tradecore"))
    ap.add_argument("--out", type=Path, required=True, help="the archive to write (.tar.gz)")
    ns = ap.parse_args(argv)
    try:
        t0 = time.perf_counter()
        manifest = backup(ns.data_dir, ns.out)
    except BackupError as exc:
        print(f"tradecore backup: {exc}", file=sys.stderr)
        return 1
    size = sum(f["size"] for f in manifest["files"])
    print(
        f"{ns.out}: {len(manifest['files'])} files, {size} bytes, {time.perf_counter() - t0:.2f} s"
    )
    return 0


def restore_main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(
        prog="tradecore restore", description="Restore a backup into an empty data directory."
    )
    ap.add_argument("archive", type=Path)
    ap.add_argument("--data-dir", type=Path, default=Path(".tradecore"))
    ns = ap.parse_args(argv)
    try:
        t0 = time.perf_counter()
        manifest = restore(ns.archive, ns.data_dir)
    except BackupError as exc:
        print(f"tradecore restore: {exc}", file=sys.stderr)
        return 1
    print(
        f"{ns.data_dir}: {len(manifest['files'])} files restored in "
        f"{time.perf_counter() - t0:.2f} s"
    )
    return 0
