"""Error messages stay short whatever the input, the pricing domain (finite input inside it
gives finite output, outside it a ValueError naming the argument/field and row), fits that can
be abandoned, and bounded service logs."""

from __future__ import annotations

import itertools
import logging
from pathlib import Path

import numpy as np
import pytest
from tradecore import pricing
from tradecore.chain import OptionChain
from tradecore.errors import QUOTE_LIMIT, quote
from tradecore.surface import fit_surface
from tradecore_api.pricing.v1 import pricing_pb2 as pb
from tradecore_services.common.interceptors import MAX_STATUS_MESSAGE_BYTES, cap_message
from tradecore_services.common.server import LOG_BACKUPS, configure_logging
from tradecore_services.common.settings import ServiceSettings
from tradecore_services.pricing import implied, logic, surfaces
from tradecore_services.pricing.stream import ChainRepricer, quote_mid

from tests.unit.test_pricing_analytics import (
    SVI_TRUE,
    fit_request,
    stream_request,
    svi_chain_quotes,
)
from tests.unit.test_pricing_analytics import quote as md_quote
from tests.unit.test_pricing_logic import contract

LONG = "A" * 10_000


# ------------------------------------------------------------------------ short messages
def test_quote_keeps_short_values_and_cuts_long_ones() -> None:
    assert quote("AAPL") == "'AAPL'"
    assert quote(1.5) == "1.5"
    cut = quote(LONG)
    assert cut == repr(LONG)[:QUOTE_LIMIT] + "…(10002 chars)"


@pytest.mark.parametrize("text", ["x" * 5000, "é" * 5000, "\U0001f600" * 3000])
def test_cap_message_bounds_utf8_bytes(text: str) -> None:
    capped = cap_message("symbol: " + text)
    assert len(capped.encode()) <= MAX_STATUS_MESSAGE_BYTES
    assert capped.startswith("symbol: ") and capped.endswith(f"…({len(text) + 8} chars)")
    assert cap_message("short message") == "short message"


def test_library_errors_quote_a_prefix_of_bad_strings() -> None:
    with pytest.raises(ValueError) as err:
        pricing.european(100.0, 100.0, 1.0, 0.0, 0.0, 0.2, LONG)
    assert "option_type[0] must be 'call' or 'put'" in str(err.value)
    assert len(str(err.value)) < 200
    for call in (
        lambda: pricing.european(100.0, 100.0, 1.0, 0.0, 0.0, 0.2, "call", model=LONG),  # type: ignore[arg-type]
        lambda: pricing.american(100.0, 100.0, 1.0, 0.0, 0.0, 0.2, "put", method=LONG),  # type: ignore[arg-type]
        lambda: pricing.implied_vol(5.0, 100.0, 100.0, 1.0, 0.0, 0.0, "call", device=LONG),  # type: ignore[arg-type]
    ):
        with pytest.raises(ValueError) as err:
            call()
        assert len(str(err.value)) < 200, str(err.value)[:300]


def test_service_errors_quote_a_prefix_of_bad_strings() -> None:
    req = pb.PriceRequest(contracts=[contract()], greek_names=[LONG])
    with pytest.raises(ValueError, match=r"greek_names\[0\] 'AAAA") as err:
        logic.price(req, 10)
    assert len(str(err.value)) < 300
    with pytest.raises(LookupError) as lookup:
        surfaces.SurfaceStore(1).get(LONG)
    assert len(str(lookup.value)) < 200


# ------------------------------------------------------------------------ pricing domain
@pytest.mark.parametrize(
    ("argument", "value", "message"),
    [
        ("sigma", 1e-300, r"sigma\[0\] must be finite and in \[1e-08, 100\] \(got 1e-300\)"),
        ("T", 1e9, r"T\[0\] must be finite and 0 or in \[1e-12, 100\] \(years\)"),
        ("r", 1e6, r"r\[0\] must be finite and in \[-2, 2\]"),
        ("q", -1e6, r"q\[0\] must be finite and in \[-2, 2\]"),
        ("S", 1e300, r"S\[0\] must be finite and in \[1e-08, 1e\+15\]"),
        ("K", 1e300, r"K\[0\] must be finite and in \[1e-100, 1e\+100\]"),
    ],
)
def test_library_rejects_inputs_outside_the_domain(
    argument: str, value: float, message: str
) -> None:
    args = dict(S=100.0, K=105.0, T=0.5, r=0.03, q=0.01, sigma=0.25)
    args[argument] = value
    batch = {k: np.array([args[k], 0.25 if k == "sigma" else args[k]]) for k in args}
    batch[argument] = np.array([value, value])
    for price in (pricing.european, pricing.american):
        with pytest.raises(ValueError, match=message):
            price(*(batch[k] for k in ("S", "K", "T", "r", "q", "sigma")), "call")  # type: ignore[operator]
    with pytest.raises(ValueError, match=message):
        pricing.european(*args.values(), "put", greeks="all")


def test_every_input_inside_the_domain_prices_finite() -> None:
    d = pricing.DOMAIN
    spot = [d.spot_min, 1e-3, 100.0, d.spot_max]
    strike = [d.strike_min, 1e-8, 100.0, 1e15, d.strike_max]
    expiry = [0.0, d.expiry_min, 1e-6, 1.0, d.expiry_max]
    rate = [-d.rate_max_abs, 0.0, d.rate_max_abs]
    vol = [d.vol_min, 0.2, d.vol_max]
    rows = np.array(list(itertools.product(spot, strike, expiry, rate, rate, vol, (1, -1))))
    cols = [rows[:, i] for i in range(6)]
    codes = rows[:, 6].astype(np.int8)
    with np.errstate(all="ignore"):
        for name, out in pricing.european(*cols, codes, greeks="all").items():
            assert np.isfinite(out).all(), name
        b76 = pricing.european(*cols[:4], 0.0, cols[5], codes, greeks="all", model="black76")
        for name, out in b76.items():
            assert np.isfinite(out).all(), name
        am = pricing.american(*cols, codes, unsupported="nan")
        ok = am["status"] == 0
        for name in ("price", "delta", "gamma", "theta", "vega", "rho"):
            assert np.isfinite(am[name][ok]).all(), name


def test_implied_vol_rows_outside_the_domain_are_invalid_input() -> None:
    price = np.full(4, 5.0)
    res = pricing.implied_vol(
        price, 100.0, 100.0, [1.0, 1e9, 1.0, 1.0], [0.0, 0.0, 1e6, 0.0], 0.0, "call"
    )
    assert res.status.tolist() == [pricing.IVStatus.OK] + [pricing.IVStatus.INVALID_INPUT] * 2 + [
        pricing.IVStatus.OK
    ]
    assert np.isfinite(res.vol[[0, 3]]).all() and np.isnan(res.vol[[1, 2]]).all()
    assert res.counts["ok"] == 2 and res.counts["invalid_input"] == 2


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (dict(volatility=1e-300), r"contracts\[0\]\.volatility must be finite and in"),
        (dict(expiry_years=1e9), r"contracts\[0\]\.expiry_years must be finite and 0 or in"),
        (dict(rate=1e6), r"contracts\[0\]\.rate must be finite and in \[-2, 2\]"),
        (dict(spot=1e300), r"contracts\[0\]\.spot must be finite and in"),
    ],
)
def test_price_names_the_field_outside_the_domain(change: dict[str, float], message: str) -> None:
    for style in (pb.EUROPEAN, pb.AMERICAN):
        req = pb.PriceRequest(contracts=[contract(style=style, **change), contract()])
        with pytest.raises(ValueError, match=message):
            logic.price(req, 10)


def test_implied_vol_service_names_the_field_outside_the_domain() -> None:
    req = pb.ImpliedVolRequest()
    req.options.add(price=5, spot=100, strike=100, expiry_years=1e9, option_type=pb.CALL)
    with pytest.raises(ValueError, match=r"options\[0\]\.expiry_years must be finite and in"):
        implied.implied_vol(req, 10)
    req.options[0].expiry_years = 1.0
    req.options[0].rate = 1e6
    with pytest.raises(ValueError, match=r"options\[0\]\.rate must be finite and in \[-2, 2\]"):
        implied.implied_vol(req, 10)


@pytest.mark.parametrize(
    ("kw", "row_change", "message"),
    [
        (dict(rate=1e6), {}, r"^rate must be finite and in \[-2, 2\]"),
        (dict(dividend_yield=-1e6), {}, r"^dividend_yield must be finite and in \[-2, 2\]"),
        ({}, dict(expiry_years=1e308), r"quotes\[3\]\.expiry_years must be finite and in"),
    ],
)
def test_fit_surface_rejects_inputs_outside_the_domain(
    kw: dict[str, float], row_change: dict[str, float], message: str
) -> None:
    quotes = svi_chain_quotes({1.0: SVI_TRUE[1.0]}, np.linspace(-0.3, 0.3, 7))
    quotes[3] = dict(quotes[3], **row_change)
    req = fit_request(quotes)
    for k, v in kw.items():
        setattr(req, k, v)
    with pytest.raises(ValueError, match=message):
        surfaces.fit(req, surfaces.SurfaceStore(1), 100)
    with pytest.raises(ValueError):
        OptionChain.from_quotes(
            [100.0], [1e308 if row_change else 1.0], "call", mid=1.0, spot=100.0,
            rate=kw.get("rate", 0.0), dividend=kw.get("dividend_yield", 0.0),
        )  # fmt: skip


def test_fit_surface_limits_the_expiries() -> None:
    n = surfaces.MAX_EXPIRIES + 1
    quotes = [
        dict(strike=100.0, expiry_years=0.01 * (i + 1), option_type="CALL", mid=1.0)
        for i in range(n)
    ]
    with pytest.raises(ValueError, match=f"quotes: {n} distinct expiry_years exceed the limit"):
        surfaces.fit(fit_request(quotes), surfaces.SurfaceStore(1), 10_000)


# ------------------------------------------------------------------------ abandoning a fit
def test_fit_checkpoint_reports_progress_and_can_stop_the_fit() -> None:
    params = {0.25 * (i + 1): SVI_TRUE[1.0] for i in range(6)}
    quotes = svi_chain_quotes(params, np.linspace(-0.3, 0.3, 9))
    chain = OptionChain.from_quotes(
        [q["strike"] for q in quotes], [q["expiry_years"] for q in quotes],
        [str(q["option_type"]).lower() for q in quotes],
        bid=[q["bid"] for q in quotes], ask=[q["ask"] for q in quotes], spot=100.0,
    )  # fmt: skip
    seen: list[tuple[int, int]] = []
    fit_surface(chain, checkpoint=lambda done, total: seen.append((done, total)))
    assert seen == [(i, 6) for i in range(7)]

    class Stop(Exception):
        pass

    def stop_after_two(done: int, total: int) -> None:
        seen.append((done, total))
        if done == 2:
            raise Stop

    seen.clear()
    with pytest.raises(Stop):
        fit_surface(chain, checkpoint=stop_after_two)
    assert seen == [(0, 6), (1, 6), (2, 6)]


# ------------------------------------------------------------------------ bounded logs
def test_service_log_rotates_at_its_size_limit(tmp_path: Path) -> None:
    log_file = tmp_path / "logs" / "pricing-service.log"
    settings = ServiceSettings(service="pricing", log_file=str(log_file), log_max_bytes=4096)
    root = logging.getLogger()
    saved_handlers, saved_level = root.handlers[:], root.level
    try:
        configure_logging(settings)
        for i in range(2000):
            logging.getLogger("tradecore.rpc").info("Price INVALID_ARGUMENT %d %s", i, "x" * 40)
        for h in root.handlers:
            h.flush()
    finally:
        for h in root.handlers:
            h.close()
        root.handlers[:] = saved_handlers
        root.setLevel(saved_level)
    files = sorted(p.name for p in log_file.parent.iterdir())
    assert files == ["pricing-service.log"] + [f"pricing-service.log.{i}" for i in range(1, 4)]
    assert LOG_BACKUPS == 3
    assert all((log_file.parent / f).stat().st_size <= 4096 for f in files)


def test_log_file_defaults_under_the_data_dir(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("TRADECORE_DATA_DIR", str(tmp_path))
    monkeypatch.delenv("TRADECORE_LOG_FILE", raising=False)
    s = ServiceSettings.from_env("pricing", port=1, metrics_port=0)
    assert s.log_file == str(tmp_path / "logs" / "pricing-service.log")
    monkeypatch.setenv("TRADECORE_LOG_FILE", "-")
    assert ServiceSettings.from_env("pricing", port=1, metrics_port=0).log_file == "-"
    monkeypatch.setenv("TRADECORE_LOG_MAX_BYTES", "10")
    with pytest.raises(ValueError, match="log_max_bytes must be >= 4096"):
        ServiceSettings.from_env("pricing", port=1, metrics_port=0)


def test_stream_skips_quotes_whose_mid_is_outside_the_domain() -> None:
    """A feed quoting 1e300 (or 1e-300) must not end every StreamGreeks call on the symbol with
    an error blaming the request: the quote is skipped like a crossed one."""
    req = stream_request()
    repricer = ChainRepricer(req, surfaces.SurfaceStore(1), 10)
    assert quote_mid(md_quote(1e300, 1e300, 1)) is None
    assert quote_mid(md_quote(1e-300, 2e-300, 1)) is None
    assert repricer.on_quote(md_quote(1e300, 1e300, 1)) is None
    update = repricer.on_quote(md_quote(99.0, 101.0, 2))
    assert update is not None and update.full and update.spot == 100.0
