"""Services meet only over gRPC and NATS: no service imports another service's generated
proto or its modules. What they share is services/common, the registry, the ``tradecore``
library and the event contracts (``tradecore_api.events``)."""

from __future__ import annotations

import ast
from pathlib import Path

from tradecore_services.registry import SERVICES

from tests.conftest import REPO

SHARED_PROTO = "events"  # tradecore_api.events: the contracts every service may use


def service_folders() -> dict[str, set[str]]:
    """Folder under services/ of each registered service -> the proto packages it owns
    (``tradecore.<pkg>.v1.Service`` -> ``<pkg>``)."""
    out: dict[str, set[str]] = {}
    for spec in SERVICES:
        folder = spec.module.split(".")[1]
        out.setdefault(folder, set()).update(s.split(".")[1] for s in spec.grpc_services)
    return out


def _imports(path: Path, package: str) -> list[tuple[int, str]]:
    """(line, absolute module) of every import in ``path``, a module of ``package``."""
    tree = ast.parse(path.read_text(), str(path))
    out: list[tuple[int, str]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out += [(node.lineno, a.name) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                module = ".".join([*base, *([node.module] if node.module else [])])
            else:
                module = node.module or ""
            # ``from . import logic`` / ``from tradecore_api.x.v1 import x_pb2`` name modules
            out += [(node.lineno, f"{module}.{a.name}") for a in node.names]
    return out


def violations(root: Path) -> list[str]:
    """Imports under ``root`` (a services/ tree) of another service's proto or module."""
    folders = service_folders()
    owned = {pkg for pkgs in folders.values() for pkg in pkgs}
    found: list[str] = []
    for folder in [*folders, "common"]:
        own_protos = folders.get(folder, set())
        for path in sorted((root / folder).rglob("*.py")):
            rel = path.relative_to(root).with_suffix("")
            parts = ["tradecore_services", *rel.parts]
            package = ".".join(parts if rel.name == "__init__" else parts[:-1])
            for line, module in _imports(path, package):
                names = module.split(".")
                if names[0] == "tradecore_api" and len(names) > 1:
                    pkg = names[1]
                    if pkg in owned and pkg not in own_protos and pkg != SHARED_PROTO:
                        found.append(f"{path.relative_to(root)}:{line} imports {module}")
                elif names[0] == "tradecore_services" and len(names) > 1:
                    other = names[1]
                    if other != folder and (other in folders or other == "mesh"):
                        found.append(f"{path.relative_to(root)}:{line} imports {module}")
    return found


def test_no_service_imports_another_services_proto_or_module() -> None:
    assert violations(REPO / "services") == []


def test_the_check_sees_a_cross_import(tmp_path: Path) -> None:
    """The check itself: a service importing another's proto, absolutely or relatively, and
    common importing a service, are all found."""
    root = tmp_path / "services"
    folders = service_folders()
    assert len(folders) >= 2, "needs two services"
    (a, a_protos), (b, b_protos) = list(folders.items())[:2]
    for folder in [a, b, "common"]:
        (root / folder).mkdir(parents=True)
    (root / a / "x.py").write_text(
        f"from tradecore_api.{next(iter(b_protos))}.v1 import y_pb2\n"
        f"from tradecore_api.{SHARED_PROTO}.v1 import market_pb2\n"
        f"from tradecore_api.{next(iter(a_protos))}.v1 import z_pb2\n"
        f"from ..{b} import logic\n"
        "from ..common import bus\n"
    )
    (root / "common" / "c.py").write_text(f"import tradecore_services.{a}.main\n")
    assert violations(root) == [
        f"{a}/x.py:1 imports tradecore_api.{next(iter(b_protos))}.v1.y_pb2",
        f"{a}/x.py:4 imports tradecore_services.{b}.logic",
        f"common/c.py:1 imports tradecore_services.{a}.main",
    ]
