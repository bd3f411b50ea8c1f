from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.mesh import Mesh


@pytest.fixture(scope="session")
def mesh(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Mesh]:
    m = Mesh.with_free_ports(Path(tmp_path_factory.mktemp("mesh")))
    up = m.run("up")
    assert up.returncode == 0, up.stdout + up.stderr
    try:
        yield m
    finally:
        down = m.run("down")
        assert down.returncode == 0, down.stdout + down.stderr
