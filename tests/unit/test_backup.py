"""tradecore backup/restore on a hand-made data directory (the drill with a real mesh is
tests/e2e/test_backup_restore.py)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from tradecore_services.mesh.backup import BackupError, backup, restore
from tradecore_services.mesh.procs import start_time


def site(root: Path) -> Path:
    data = root / "data"
    (data / "store" / "abc").mkdir(parents=True)
    (data / "store" / "abc" / "part.bin").write_bytes(os.urandom(4096))
    (data / "tables").mkdir()
    (data / "tables" / "ticks").symlink_to("../store/abc")
    key = data / "audit" / "signing.key"
    key.parent.mkdir()
    key.write_bytes(b"k" * 32)
    key.chmod(0o600)
    (data / "logs").mkdir()
    (data / "logs" / "pricing-service.log").write_text("not backed up")
    return data


def test_a_restore_gives_back_files_modes_and_links(tmp_path: Path) -> None:
    data = site(tmp_path)
    manifest = backup(data, tmp_path / "b.tar.gz")
    paths = {f["path"] for f in manifest["files"]}
    assert paths == {"store/abc/part.bin", "audit/signing.key"}  # logs left out
    new = tmp_path / "restored"
    restore(tmp_path / "b.tar.gz", new)
    assert (new / "store/abc/part.bin").read_bytes() == (data / "store/abc/part.bin").read_bytes()
    assert (new / "audit/signing.key").stat().st_mode & 0o777 == 0o600
    assert os.readlink(new / "tables/ticks") == "../store/abc"
    assert (new / "tables/ticks/part.bin").exists()


def test_links_out_of_the_data_directory_are_refused(tmp_path: Path) -> None:
    data = site(tmp_path)
    (data / "escape").symlink_to("/etc")
    with pytest.raises(BackupError, match="link out of the data directory"):
        backup(data, tmp_path / "b.tar.gz")


def test_a_backup_is_refused_while_the_mesh_runs(tmp_path: Path) -> None:
    data = site(tmp_path)
    state = {"supervisor_pid": os.getpid(), "supervisor_start": start_time(os.getpid())}
    (data / "mesh.json").write_text(json.dumps(state))
    with pytest.raises(BackupError, match="the mesh is running"):
        backup(data, tmp_path / "b.tar.gz")
    state["supervisor_start"] = -1  # that pid is another process now: not running
    (data / "mesh.json").write_text(json.dumps(state))
    backup(data, tmp_path / "b.tar.gz")


def test_a_restore_refuses_what_is_not_a_backup_or_a_non_empty_target(tmp_path: Path) -> None:
    (tmp_path / "junk.tar.gz").write_bytes(b"nope")
    with pytest.raises(BackupError, match="not a tradecore backup"):
        restore(tmp_path / "junk.tar.gz", tmp_path / "a")
    data = site(tmp_path)
    backup(data, tmp_path / "b.tar.gz")
    with pytest.raises(BackupError, match="not empty"):
        restore(tmp_path / "b.tar.gz", data)
