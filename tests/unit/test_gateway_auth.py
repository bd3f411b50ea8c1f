"""The gateway's auth pieces without a mesh: the role table, the filter order, keys and tokens,
and the services' view of the claims."""

from __future__ import annotations

import base64
import json
import re
from pathlib import Path

import pytest
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature
from google.protobuf import descriptor_pb2
from tradecore_gateway.auth import (
    CLAIMS_HEADER,
    METHOD_ROLES,
    ROLES,
    AuthConfig,
    method_roles,
)
from tradecore_gateway.generate import Upstream, descriptor_path, envoy_config
from tradecore_services.common.errors import PermissionDeniedError
from tradecore_services.common.interceptors import CLAIMS, CLAIMS_KEY, check_account
from tradecore_services.mesh import auth


def test_every_rpc_of_the_descriptor_set_has_a_minimum_role() -> None:
    roles = method_roles(descriptor_path())
    fds = descriptor_pb2.FileDescriptorSet.FromString(descriptor_path().read_bytes())
    rpcs = {
        f"/{f.package}.{s.name}/{m.name}" for f in fds.file for s in f.service for m in s.method
    }
    assert set(roles) == rpcs
    assert set(roles.values()) <= set(ROLES)
    assert roles["/tradecore.execution.v1.ExecutionService/SubmitOrder"] == "trader"
    assert roles["/tradecore.execution.v1.ExecutionService/SetTradingState"] == "risk"
    assert roles["/tradecore.marketdata.v1.MarketDataService/StartFeed"] == "admin"
    assert roles["/tradecore.pricing.v1.PricingService/Price"] == "viewer"


def test_a_new_rpc_without_a_role_fails(tmp_path: Path) -> None:
    fds = descriptor_pb2.FileDescriptorSet.FromString(descriptor_path().read_bytes())
    service = next(s for f in fds.file if f.package == "tradecore.pricing.v1" for s in f.service)
    service.method.add(name="Brandnew", input_type=".tradecore.pricing.v1.PriceRequest")
    path = tmp_path / "d.binpb"
    path.write_bytes(fds.SerializeToString())
    with pytest.raises(ValueError, match="PricingService/Brandnew"):
        method_roles(path)


def test_the_table_names_no_rpc_that_does_not_exist() -> None:
    assert all(METHOD_ROLES[s] for s in METHOD_ROLES)  # no empty service entries
    method_roles(descriptor_path())  # raises for a stale entry


def _filters(cfg: dict[str, object]) -> list[str]:
    listener = cfg["static_resources"]["listeners"][0]  # type: ignore[index]
    hcm = listener["filter_chains"][0]["filters"][0]["typed_config"]
    return [f["name"] for f in hcm["http_filters"]]


def test_filter_order(tmp_path: Path) -> None:
    ups = {"tradecore.pricing.v1.PricingService": Upstream("127.0.0.1", 1)}
    on = envoy_config(
        descriptor=descriptor_path(),
        upstreams=ups,
        auth=AuthConfig("tradecore", "tradecore", tmp_path / "jwks.json"),
    )
    # (the edge's filters around them: tests/unit/test_gateway_edge.py)
    assert _filters(on) == [
        "envoy.filters.http.cors",
        "envoy.filters.http.grpc_web",
        "envoy.filters.http.header_mutation",
        "envoy.filters.http.jwt_authn",
        "envoy.filters.http.lua",
        "envoy.filters.http.grpc_json_transcoder",
        "envoy.filters.http.rbac",
        "envoy.filters.http.local_ratelimit",
        "envoy.filters.http.buffer",
        "envoy.filters.http.router",
    ]
    # With auth off the client's claims header is still removed, before anything reads it.
    off = envoy_config(descriptor=descriptor_path(), upstreams=ups)
    assert _filters(off)[2] == "envoy.filters.http.header_mutation"
    assert "envoy.filters.http.jwt_authn" not in _filters(off)
    assert CLAIMS_HEADER == CLAIMS_KEY


def _verify(token: str, jwks: dict[str, object]) -> dict[str, object]:
    head, body, sig = token.split(".")
    pad = lambda s: s + "=" * (-len(s) % 4)  # noqa: E731
    header = json.loads(base64.urlsafe_b64decode(pad(head)))
    jwk = next(k for k in jwks["keys"] if k["kid"] == header["kid"])  # type: ignore[attr-defined]
    x = int.from_bytes(base64.urlsafe_b64decode(pad(jwk["x"])), "big")
    y = int.from_bytes(base64.urlsafe_b64decode(pad(jwk["y"])), "big")
    key = ec.EllipticCurvePublicNumbers(x, y, ec.SECP256R1()).public_key()
    raw = base64.urlsafe_b64decode(pad(sig))
    der = encode_dss_signature(int.from_bytes(raw[:32], "big"), int.from_bytes(raw[32:], "big"))
    key.verify(der, f"{head}.{body}".encode(), ec.ECDSA(hashes.SHA256()))
    assert header["alg"] == "ES256"
    return json.loads(base64.urlsafe_b64decode(pad(body)))  # type: ignore[no-any-return]


def test_keys_are_private_and_tokens_verify_against_the_jwks(tmp_path: Path) -> None:
    kid = auth.ensure_keys(tmp_path)
    assert auth.ensure_keys(tmp_path) == kid  # made once
    folder = tmp_path / "auth"
    assert folder.stat().st_mode & 0o777 == 0o700
    assert (folder / "keys").stat().st_mode & 0o777 == 0o700
    assert (folder / "keys" / f"{kid}.pem").stat().st_mode & 0o777 == 0o600
    jwks = json.loads((folder / "jwks.json").read_text())
    assert [k["kid"] for k in jwks["keys"]] == [kid]
    assert "d" not in jwks["keys"][0]  # public parts only
    tok = auth.mint(tmp_path, "trader", "acct-1", 120, now=1000)
    claims = _verify(tok, jwks)
    assert claims == {
        "iss": "tradecore", "aud": "tradecore", "sub": "acct-1", "role": "trader",
        "iat": 1000, "exp": 1120, "account": "acct-1",
    }  # fmt: skip


def test_rotation_keeps_the_old_key_until_retired(tmp_path: Path) -> None:
    old = auth.ensure_keys(tmp_path)
    old_token = auth.mint(tmp_path, "viewer")
    new = auth.rotate(tmp_path)
    assert new != old and auth.current_kid(tmp_path) == new
    jwks = json.loads((tmp_path / "auth" / "jwks.json").read_text())
    assert {k["kid"] for k in jwks["keys"]} == {old, new}
    _verify(old_token, jwks)
    assert _verify(auth.mint(tmp_path, "viewer"), jwks)["role"] == "viewer"
    with pytest.raises(ValueError, match="current signing key"):
        auth.retire(tmp_path, new)
    auth.retire(tmp_path, old)
    jwks = json.loads((tmp_path / "auth" / "jwks.json").read_text())
    assert [k["kid"] for k in jwks["keys"]] == [new]
    with pytest.raises(StopIteration):
        _verify(old_token, jwks)
    with pytest.raises(ValueError, match="no key"):
        auth.retire(tmp_path, old)


def test_a_token_from_another_key_does_not_verify(tmp_path: Path) -> None:
    kid = auth.ensure_keys(tmp_path)
    forged = auth.sign({"role": "admin"}, ec.generate_private_key(ec.SECP256R1()), kid)
    with pytest.raises(InvalidSignature):
        _verify(forged, json.loads((tmp_path / "auth" / "jwks.json").read_text()))


@pytest.mark.parametrize(
    "text, seconds", [("90", 90), ("90s", 90), ("15m", 900), ("1h", 3600), ("7d", 604800)]
)
def test_ttl(text: str, seconds: int) -> None:
    assert auth.parse_ttl(text) == seconds


@pytest.mark.parametrize("text", ["", "0", "-1h", "1y", "h"])
def test_bad_ttl_names_the_field(text: str) -> None:
    with pytest.raises(ValueError, match=r"^ttl: "):
        auth.parse_ttl(text)


def test_mint_refuses_bad_roles_and_traders_without_account(tmp_path: Path) -> None:
    auth.ensure_keys(tmp_path)
    with pytest.raises(ValueError, match=r"^role: "):
        auth.mint(tmp_path, "root")
    with pytest.raises(ValueError, match=r"^account: "):
        auth.mint(tmp_path, "trader")
    with pytest.raises(ValueError, match="no signing key"):
        auth.mint(tmp_path / "elsewhere", "viewer")


def test_check_account() -> None:
    check_account("any")  # no claims: not through an authenticating gateway
    for role in ("risk", "admin"):
        CLAIMS.set({"role": role})
        check_account("any")
    CLAIMS.set({"role": "trader", "account": "mine"})
    check_account("mine")
    with pytest.raises(PermissionDeniedError, match="account 'theirs'"):
        check_account("theirs")
    CLAIMS.set({"role": "viewer"})
    with pytest.raises(PermissionDeniedError):
        check_account("mine")
    CLAIMS.set(None)


def test_the_mesh_settings_check_auth(tmp_path: Path) -> None:
    from tradecore_services.mesh.config import MeshConfig

    with pytest.raises(ValueError, match="--auth"):
        MeshConfig(auth="maybe").validate()
    cfg = MeshConfig(data_dir=str(tmp_path), auth_jwks_file=str(tmp_path / "missing.json"))
    with pytest.raises(ValueError, match="auth-jwks-file"):
        auth.prepare(cfg)
    jwks = tmp_path / "theirs.json"
    jwks.write_text(json.dumps({"keys": [{"kty": "EC"}]}))
    cfg = MeshConfig(data_dir=str(tmp_path), auth_issuer="https://idp", auth_jwks_file=str(jwks))
    auth.prepare(cfg)
    assert not (tmp_path / "auth").exists()  # no local key with the user's issuer
    got = auth.auth_config(cfg)
    assert got is not None and got.jwks_file == jwks and got.issuer == "https://idp"
    assert auth.auth_config(MeshConfig(auth="off")) is None


def test_kids_never_read_as_command_line_options(tmp_path: Path) -> None:
    """A kid is the hex thumbprint: `tradecore token rotate --retire <kid>` takes it as typed
    (a base64url kid may begin with "-", which argparse reads as an option)."""
    kids = {auth.ensure_keys(tmp_path), *(auth.rotate(tmp_path) for _ in range(40))}
    assert all(re.fullmatch(r"[0-9a-f]{64}", kid) for kid in kids)
    jwks = json.loads((tmp_path / "auth" / "jwks.json").read_text())
    assert {k["kid"] for k in jwks["keys"]} == kids
