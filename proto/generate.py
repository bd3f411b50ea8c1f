"""Generate the Python gRPC code and the Envoy descriptor set from ``proto/``.

Run by the CMake build (``pip install .``); nothing it writes is committed.

Output layout under ``--out``::

    tradecore_api/__init__.py
    tradecore_api/<svc>/v1/<name>_pb2.py, _pb2_grpc.py, _pb2.pyi
    tradecore_api/inference/grpc_service_pb2.py, _pb2_grpc.py, _pb2.pyi
    tradecore_api/descriptors.binpb     (FileDescriptorSet with imports and source info)

Protos live at ``proto/tradecore/<svc>/v1``; their generated imports
(``from tradecore.<svc>.v1 import ...``) are rewritten to ``tradecore_api`` so that the
generated code never shadows the ``tradecore`` library package.

``proto/inference/`` is the Open Inference Protocol (package ``inference``, the names Triton
uses, so tritonclient speaks to it unchanged). tritonclient registers the same full names in
protobuf's default descriptor pool, so our copy is built into a pool of its own
(``tradecore_api/inference/_pool.py``): both load in one process.
"""

from __future__ import annotations

import argparse
import re
import shutil
import sys
import tempfile
from pathlib import Path


def _include_dirs() -> list[str]:
    import grpc_tools

    dirs = [str(Path(grpc_tools.__file__).parent / "_proto")]
    # googleapis-common-protos ships google/api/*.proto next to its Python modules.
    import google.api

    for entry in google.api.__path__:
        root = Path(entry).parent.parent
        if (root / "google" / "api" / "annotations.proto").exists():
            dirs.append(str(root))
            break
    else:
        raise SystemExit(
            "google/api/annotations.proto not found (install googleapis-common-protos)"
        )
    return dirs


# Proto packages outside ``tradecore.*`` (their names fixed by an external protocol), generated
# as ``tradecore_api.<package>`` into a descriptor pool of their own.
EXTRA_PACKAGES = ("inference",)
_POOL_MODULE = '''"""The descriptor pool of the generated ``{pkg}`` package (kept apart from
protobuf's default pool, where a client library may register the same full names)."""

from google.protobuf import descriptor_pool

POOL = descriptor_pool.DescriptorPool()
'''


def _own_pool(pkg: Path) -> None:
    """Build the generated modules under ``pkg`` into the package's own descriptor pool."""
    (pkg / "_pool.py").write_text(_POOL_MODULE.format(pkg=pkg.name))
    for f in pkg.glob("*_pb2.py"):
        text = f.read_text()
        anchor = "from google.protobuf import descriptor_pool as _descriptor_pool\n"
        new = text.replace(
            anchor, f"{anchor}from tradecore_api.{pkg.name} import _pool as _own_pool\n", 1
        ).replace(
            "_descriptor_pool.Default().AddSerializedFile(", "_own_pool.POOL.AddSerializedFile("
        )
        if new.count("_own_pool") != 2:
            raise SystemExit(f"{f}: the generated code no longer adds its file to the default pool")
        f.write_text(new)


def generate(proto_dir: Path, out: Path) -> None:
    from grpc_tools import protoc

    protos = sorted(p.relative_to(proto_dir).as_posix() for p in proto_dir.rglob("*.proto"))
    if not protos:
        raise SystemExit(f"no .proto files under {proto_dir}")
    includes = [f"-I{proto_dir}"] + [f"-I{d}" for d in _include_dirs()]
    with tempfile.TemporaryDirectory() as tmp:
        args = [
            "grpc_tools.protoc",
            *includes,
            f"--python_out={tmp}",
            f"--pyi_out={tmp}",
            f"--grpc_python_out={tmp}",
            *protos,
        ]
        if protoc.main(args) != 0:
            raise SystemExit("protoc failed (python)")
        api = out / "tradecore_api"
        if api.exists():
            shutil.rmtree(api)
        shutil.copytree(Path(tmp) / "tradecore", api)
        for extra in EXTRA_PACKAGES:
            if (Path(tmp) / extra).is_dir():
                # beside our own tradecore.<extra>.* packages of the same name, if any
                shutil.copytree(Path(tmp) / extra, api / extra, dirs_exist_ok=True)
    # Package markers and import rewrite.
    for d in [api, *[p for p in api.rglob("*") if p.is_dir()]]:
        (d / "__init__.py").touch()
    pattern = re.compile(r"^(from|import) tradecore\.", re.MULTILINE)
    extra = re.compile(rf"^(from|import) ({'|'.join(EXTRA_PACKAGES)})\b", re.MULTILINE)
    for f in api.rglob("*.py*"):
        text = f.read_text()
        new = pattern.sub(lambda m: f"{m.group(1)} tradecore_api.", text)
        new = extra.sub(lambda m: f"{m.group(1)} tradecore_api.{m.group(2)}", new)
        if new != text:
            f.write_text(new)
    for pkg in EXTRA_PACKAGES:
        _own_pool(api / pkg)
    (api / "py.typed").touch()
    desc = api / "descriptors.binpb"
    args = [
        "grpc_tools.protoc",
        *includes,
        "--include_imports",
        "--include_source_info",
        f"--descriptor_set_out={desc}",
        *protos,
    ]
    if protoc.main(args) != 0:
        raise SystemExit("protoc failed (descriptor set)")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--proto-dir", type=Path, required=True)
    ap.add_argument("--out", type=Path, required=True)
    ns = ap.parse_args(argv)
    ns.out.mkdir(parents=True, exist_ok=True)
    generate(ns.proto_dir.resolve(), ns.out.resolve())
    return 0


if __name__ == "__main__":
    sys.exit(main())
