"""``tradecore model ...``: the model registry and traffic policies of a running mesh's
InferenceService (``tradecore.inference.v1.ModelService``), over gRPC.

    tradecore model list
    tradecore model show NAME
    tradecore model register NAME FILE [--platform P] [--description D] [--metric K=V ...]
                             [--reference REF.npz] [--config K=V ...] [--data-source S]
                             [--data-start T] [--data-end T] [--code-version C] [--seed N]
                             [--param K=V ...] [--parent V] [--by WHO]
    tradecore model alias NAME ALIAS VERSION [--reason R] [--by WHO]
    tradecore model alias NAME ALIAS --remove [--reason R] [--by WHO]
    tradecore model rollback NAME ALIAS [--reason R] [--by WHO]
    tradecore model policy NAME [none|canary|shadow|ab] [--challenger V] [--percent P]
                           [--seed N] [--alpha A] [--tolerance T] [--reason R] [--by WHO]
    tradecore model report NAME

``register`` uploads the file to the service (RegisterModel), which owns the registry's store:
the embedded ClickHouse allows one process per data path, so the CLI never opens it itself.
``--code-version`` defaults to the git commit of the current directory (with ``-dirty`` when it
has uncommitted changes), ``--by`` to the user name. ``policy`` without a kind shows the
policy in force.

Each prints its answer as JSON. Exit status: 0 ok, 1 the service refused the request (not
found, nothing to roll back to), 2 bad input, 3 the mesh is not running or the service is
unavailable.
"""

from __future__ import annotations

import argparse
import getpass
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import grpc

from .client_cli import message_json, service_target
from .config import MeshConfig

MAX_UPLOAD = 64 * 1024 * 1024


def _user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "unknown"


def _key_value(text: str) -> tuple[str, str]:
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}")
    return key, value


def _param_value(text: str) -> str | int | float | bool:
    """A hyper-parameter as typed: true/false, an integer, a number, else text."""
    if text in ("true", "false"):
        return text == "true"
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text


def model_parser() -> argparse.ArgumentParser:
    from .cli import _add_mesh_args

    ap = argparse.ArgumentParser(prog="tradecore model", description=__doc__.split("\n")[0])
    _add_mesh_args(ap, MeshConfig.from_env())
    ap.add_argument("--target", default="", help="InferenceService host:port (default: mesh)")
    sub = ap.add_subparsers(dest="action", required=True)
    sub.add_parser("list", help="every registered model")
    sh = sub.add_parser("show", help="a model's versions, lineage, aliases and alias history")
    sh.add_argument("name")
    rg = sub.add_parser("register", help="upload a model file as the model's next version")
    rg.add_argument("name")
    rg.add_argument("file", type=Path)
    rg.add_argument("--platform", default="", help="default: from the suffix (.onnx, .plan)")
    rg.add_argument("--description", default="")
    rg.add_argument("--metric", action="append", type=_key_value, default=[], metavar="K=V")
    rg.add_argument("--reference", type=Path, help="an .npz of reference data for drift")
    rg.add_argument(
        "--config", action="append", type=_key_value, default=[], metavar="K=V",
        help="serving settings of the version (e.g. max_batch_size=64)",
    )  # fmt: skip
    rg.add_argument("--data-source", default="")
    rg.add_argument("--data-start", default="", help="ISO 8601 date/time")
    rg.add_argument("--data-end", default="", help="ISO 8601 date/time")
    rg.add_argument("--code-version", default=None, help="default: git commit of the cwd")
    rg.add_argument("--seed", type=int, default=None)
    rg.add_argument("--param", action="append", type=_key_value, default=[], metavar="K=V")
    rg.add_argument("--parent", type=int, default=0, help="the version it was trained from")
    rg.add_argument("--alias", default="", help="then point this alias at it (e.g. challenger)")
    al = sub.add_parser("alias", help="point an alias at a version (or --remove it)")
    al.add_argument("name")
    al.add_argument("alias")
    al.add_argument("version", type=int, nargs="?")
    al.add_argument("--remove", action="store_true")
    rb = sub.add_parser("rollback", help="move an alias back to its previous version")
    rb.add_argument("name")
    rb.add_argument("alias")
    po = sub.add_parser("policy", help="show or set the model's traffic policy")
    po.add_argument("name")
    po.add_argument("kind", nargs="?", choices=["none", "canary", "shadow", "ab"])
    po.add_argument("--challenger", type=int, default=0, help="the challenger version")
    po.add_argument("--percent", type=float, default=0.0, help="challenger / mirrored share")
    po.add_argument("--seed", type=int, default=0, help="salts the routing hash")
    po.add_argument("--alpha", type=float, default=None, help="A/B significance level")
    po.add_argument("--tolerance", type=float, default=None, help="shadow agreement")
    rp = sub.add_parser("report", help="requests, A/B tests and shadow comparison")
    rp.add_argument("name")
    for p in (rg, al, rb, po):
        p.add_argument("--by", default=_user(), help="who does it (default: the user)")
    for p in (rg, al, rb, po):
        p.add_argument("--reason", default="")
    return ap


def _register_request(ns: argparse.Namespace, pb: Any) -> Any:
    from tradecore.inference.registry import git_commit

    size = ns.file.stat().st_size
    if size > MAX_UPLOAD:
        raise ValueError(f"file: {size} bytes, the service takes at most {MAX_UPLOAD}")
    lineage = pb.Lineage(
        data_source=ns.data_source,
        data_start=ns.data_start,
        data_end=ns.data_end,
        code_version=git_commit() if ns.code_version is None else ns.code_version,
        parent_version=ns.parent,
    )
    if ns.seed is not None:
        lineage.seed = ns.seed
    lineage.params.update({k: _param_value(v) for k, v in ns.param})
    metrics: dict[str, float] = {}
    for key, value in ns.metric:
        try:
            metrics[key] = float(value)
        except ValueError:
            raise ValueError(f"metric {key}: a number, got {value!r}") from None
    return pb.RegisterModelRequest(
        name=ns.name,
        file_name=ns.file.name,
        model=ns.file.read_bytes(),
        platform=ns.platform,
        lineage=lineage,
        metrics=metrics,
        config=dict(ns.config),
        reference_npz=ns.reference.read_bytes() if ns.reference else b"",
        description=ns.description,
        actor=ns.by,
    )


def _calls(ns: argparse.Namespace, pb: Any) -> Callable[[Any], Any]:
    """The call to make (built before connecting, so bad input never reaches the service)."""
    if ns.action == "list":
        return lambda stub: stub.ListModels(pb.ListModelsRequest(), timeout=30)
    if ns.action == "show":
        return lambda stub: stub.GetModel(pb.GetModelRequest(name=ns.name), timeout=30)
    if ns.action == "register":
        request = _register_request(ns, pb)

        def register(stub: Any) -> Any:
            version = stub.RegisterModel(request, timeout=120)
            if ns.alias:
                stub.SetAlias(
                    pb.SetAliasRequest(
                        name=ns.name,
                        alias=ns.alias,
                        version=version.version,
                        actor=ns.by,
                        reason=ns.reason or "registered with --alias",
                    ),
                    timeout=30,
                )
            return version

        return register
    if ns.action == "alias":
        if ns.remove == (ns.version is not None):
            raise ValueError("alias: give a VERSION or --remove")
        if ns.remove:
            remove = pb.DeleteAliasRequest(
                name=ns.name, alias=ns.alias, actor=ns.by, reason=ns.reason
            )
            return lambda stub: stub.DeleteAlias(remove, timeout=30)
        move = pb.SetAliasRequest(
            name=ns.name, alias=ns.alias, version=ns.version, actor=ns.by, reason=ns.reason
        )
        return lambda stub: stub.SetAlias(move, timeout=30)
    if ns.action == "rollback":
        back = pb.RollbackRequest(name=ns.name, alias=ns.alias, actor=ns.by, reason=ns.reason)
        return lambda stub: stub.Rollback(back, timeout=30)
    if ns.action == "policy":
        if ns.kind is None:
            get = pb.GetTrafficPolicyRequest(name=ns.name)
            return lambda stub: stub.GetTrafficPolicy(get, timeout=30)
        if ns.seed < 0:
            raise ValueError(f"seed: >= 0, got {ns.seed}")
        policy = pb.SetTrafficPolicyRequest(
            name=ns.name,
            kind=pb.PolicyKind.Value(ns.kind.upper()),
            challenger_version=ns.challenger,
            percent=ns.percent,
            seed=ns.seed,
            actor=ns.by,
            reason=ns.reason,
        )
        if ns.alpha is not None:
            policy.alpha = ns.alpha
        if ns.tolerance is not None:
            policy.tolerance = ns.tolerance
        return lambda stub: stub.SetTrafficPolicy(policy, timeout=30)
    report = pb.GetRolloutReportRequest(name=ns.name)
    return lambda stub: stub.GetRolloutReport(report, timeout=30)


def model_main(argv: list[str]) -> int:
    ns = model_parser().parse_args(argv)
    what = f"model {ns.action}"
    from tradecore_api.inference.v1 import models_pb2 as pb
    from tradecore_api.inference.v1 import models_pb2_grpc as pb_grpc

    try:
        call = _calls(ns, pb)
        target = service_target(ns.data_dir, ns.target, "inference")
    except (ValueError, OSError) as exc:
        print(f"tradecore {what}: {exc}", file=sys.stderr)
        return 2
    if target is None:
        print(
            f"tradecore {what}: the mesh is not running (no "
            f"{Path(ns.data_dir).resolve()}/mesh.json)",
            file=sys.stderr,
        )
        return 3
    options = [("grpc.max_send_message_length", MAX_UPLOAD + (1 << 20))]
    with grpc.insecure_channel(target, options=options) as channel:
        try:
            print(message_json(call(pb_grpc.ModelServiceStub(channel))))
            return 0
        except grpc.RpcError as exc:
            code = exc.code()
            print(f"tradecore {what}: {code.name}: {exc.details()}", file=sys.stderr)
            if code == grpc.StatusCode.INVALID_ARGUMENT:
                return 2
            if code in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED):
                return 3
            return 1
