from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.mesh import Mesh


@contextlib.contextmanager
def running_mesh(data_dir: Path, *extra: str) -> Iterator[Mesh]:
    """A mesh on free ports (``extra``: more flags of ``tradecore up``), up for the block and
    down after it (both must succeed). The gateway asks for a token: ``mesh.channel()``,
    ``mesh.auth_headers()`` and ``mesh.metadata()`` carry an admin one."""
    m = Mesh.with_free_ports(data_dir)
    up = m.run("up", *extra)
    assert up.returncode == 0, up.stdout + up.stderr
    try:
        yield m
    finally:
        down = m.run("down")
        assert down.returncode == 0, down.stdout + down.stderr


@pytest.fixture(scope="session")
def mesh(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Mesh]:
    with running_mesh(Path(tmp_path_factory.mktemp("mesh"))) as m:
        yield m


@pytest.fixture(autouse=True)
def _mesh_ready(request: pytest.FixtureRequest) -> None:
    """Every test that uses the shared mesh starts with each service SERVING: a test before it
    may have SIGKILLed a service or nats-server, and the restarted parts take a moment to
    reconnect."""
    if "mesh" in request.fixturenames:
        mesh = request.getfixturevalue("mesh")
        if isinstance(mesh, Mesh):
            mesh.wait_all_serving()
