"""PricingService logic without a server: Greek selection, ImpliedVol, FitSurface/QuerySurface
and the StreamGreeks repricer, each against the library."""

from __future__ import annotations

import math

import numpy as np
import pytest
from tradecore import pricing
from tradecore.surface import SviParams
from tradecore_api.events.v1 import market_pb2
from tradecore_api.pricing.v1 import pricing_pb2 as pb
from tradecore_services.common.errors import NotFoundError
from tradecore_services.pricing import implied, logic, surfaces
from tradecore_services.pricing.stream import ChainRepricer, quote_mid

S, R, Q = 100.0, 0.03, 0.01
SVI_TRUE = {
    0.25: SviParams(a=0.010, b=0.10, rho=-0.40, m=0.02, sigma=0.15),
    1.0: SviParams(a=0.030, b=0.15, rho=-0.50, m=0.05, sigma=0.30),
}
# Axel Vogt's slice: its density is negative near k = 0.9 (butterfly arbitrage).
VOGT = SviParams(a=-0.0410, b=0.1331, rho=0.3060, m=0.3586, sigma=0.4153)
HIGHER = ("vanna", "charm", "vomma", "speed", "color", "zomma", "ultima", "veta")


def contract(**kw: object) -> pb.OptionContract:
    base: dict[str, object] = dict(
        spot=100.0, strike=100.0, expiry_years=1.0, rate=0.01, dividend_yield=0.0,
        volatility=0.2, option_type=pb.CALL, style=pb.EUROPEAN,
    )  # fmt: skip
    base.update(kw)
    return pb.OptionContract(**base)  # type: ignore[arg-type]


def svi_chain_quotes(
    params: dict[float, SviParams], k: np.ndarray, both: bool = True
) -> list[dict[str, object]]:
    """Chain quotes (JSON-shaped dicts) priced by BSM at the SVI vols, bid/ask 1 % around."""
    out: list[dict[str, object]] = []
    for T, p in params.items():
        F = S * math.exp((R - Q) * T)
        K = F * np.exp(k)
        vol = np.sqrt(p.total_variance(k) / T)
        for kind in ("CALL", "PUT") if both else (None,):
            typ = np.where(K >= F, "call", "put") if kind is None else np.full(K.size, kind)
            mid = pricing.european(S, K, T, R, Q, vol, typ, greeks="none")["price"]
            for strike, m, t in zip(K.tolist(), mid.tolist(), typ.tolist(), strict=True):
                out.append(
                    dict(strike=strike, expiry_years=T, option_type=t.upper(),
                         bid=m * 0.99, ask=m * 1.01)
                )  # fmt: skip
    return out


def fit_request(quotes: list[dict[str, object]], **kw: object) -> pb.FitSurfaceRequest:
    req = pb.FitSurfaceRequest(
        underlying="XYZ",
        spot=S,
        rate=R,
        dividend_yield=Q,
        **kw,  # type: ignore[arg-type]
    )
    for q in quotes:
        req.quotes.add(
            **{k: pb.OptionType.Value(v) if k == "option_type" else v for k, v in q.items()}
        )  # type: ignore[arg-type]
    return req


# ------------------------------------------------------------------------------ Price
def test_default_is_first_order_and_unrequested_greeks_are_absent() -> None:
    (r,) = logic.price(pb.PriceRequest(contracts=[contract()]), 10).results
    assert all(r.HasField(g) for g in logic.FIRST_ORDER)
    assert not any(r.HasField(g) for g in HIGHER)
    (r,) = logic.price(pb.PriceRequest(contracts=[contract()], greeks=pb.GREEKS_NONE), 10).results
    assert r.price > 0 and not any(r.HasField(g) for g in logic.API_GREEKS)


def test_all_greeks_equal_the_library() -> None:
    K = [80.0, 100.0, 125.0]
    req = pb.PriceRequest(
        contracts=[contract(strike=k, option_type=pb.PUT, dividend_yield=0.02) for k in K],
        greeks=pb.GREEKS_ALL,
    )
    res = logic.price(req, 10).results
    ref = pricing.european(100.0, K, 1.0, 0.01, 0.02, 0.2, "put", greeks="all")
    for g in ("price", *logic.API_GREEKS):
        assert [getattr(r, g) for r in res] == ref[g].tolist(), g
    assert len(logic.API_GREEKS) == 14


def test_the_api_greeks_are_the_librarys_that_price_result_carries() -> None:
    # One list of Greeks (the library's): the service offers those its result message has.
    fields = pb.PriceResult.DESCRIPTOR.fields_by_name
    assert tuple(g for g in pricing.ALL_GREEKS if g in fields) == logic.API_GREEKS
    assert set(fields) - {"price"} == set(logic.API_GREEKS)
    assert not hasattr(logic, "ALL_GREEKS")  # no second list of the same name
    assert logic.select_greeks(pb.GREEKS_ALL, [], "bsm") == list(logic.API_GREEKS)
    black76 = logic.select_greeks(pb.GREEKS_ALL, [], "black76")
    assert black76 == [g for g in pricing.BLACK76_GREEKS if g in fields]
    assert {*pricing.AMERICAN_GREEKS, "phi"} == set(logic.AMERICAN_GREEKS)


def test_greek_names_select_and_validate() -> None:
    req = pb.PriceRequest(contracts=[contract()], greek_names=["vanna", "delta", "vanna"])
    (r,) = logic.price(req, 10).results
    ref = pricing.european(100.0, 100.0, 1.0, 0.01, 0.0, 0.2, "call", greeks=["vanna", "delta"])
    assert r.vanna == float(ref["vanna"]) and r.delta == float(ref["delta"])
    assert not r.HasField("gamma")
    with pytest.raises(ValueError, match=r"greek_names\[1\] 'dleta' is not a Greek"):
        logic.price(pb.PriceRequest(contracts=[contract()], greek_names=["rho", "dleta"]), 10)
    with pytest.raises(ValueError, match="either greeks or greek_names"):
        logic.price(
            pb.PriceRequest(contracts=[contract()], greeks=pb.GREEKS_ALL, greek_names=["rho"]), 10
        )


def test_black76_model() -> None:
    req = pb.PriceRequest(contracts=[contract(spot=102.0)], model=pb.MODEL_BLACK76)
    (r,) = logic.price(req, 10).results
    ref = pricing.black76(102.0, 100.0, 1.0, 0.01, 0.2, "call", greeks="first")
    assert r.price == float(ref["price"]) and r.delta == float(ref["delta"])
    assert not r.HasField("phi")  # no phi for a forward
    with pytest.raises(ValueError, match=r"contracts\[0\]\.dividend_yield must be 0"):
        logic.price(
            pb.PriceRequest(contracts=[contract(dividend_yield=0.01)], model=pb.MODEL_BLACK76), 10
        )
    with pytest.raises(ValueError, match=r"greek_names\[0\] 'phi' does not exist"):
        logic.price(
            pb.PriceRequest(contracts=[contract()], model=pb.MODEL_BLACK76, greek_names=["phi"]),
            10,
        )
    with pytest.raises(ValueError, match=r"contracts\[1\]\.style AMERICAN .* MODEL_BSM only"):
        logic.price(
            pb.PriceRequest(
                contracts=[contract(), contract(style=pb.AMERICAN)], model=pb.MODEL_BLACK76
            ),
            10,
        )


def test_american_rows_refuse_higher_order_greeks() -> None:
    req = pb.PriceRequest(
        contracts=[contract(), contract(style=pb.AMERICAN, option_type=pb.PUT)],
        greeks=pb.GREEKS_ALL,
    )
    with pytest.raises(ValueError, match=r"vanna.*not available for American.*contracts\[1\]"):
        logic.price(req, 10)
    req = pb.PriceRequest(
        contracts=[contract(style=pb.AMERICAN, option_type=pb.PUT, rate=0.05)],
        greek_names=["phi", "delta"],
    )
    (r,) = logic.price(req, 10).results
    ref = pricing.american(100.0, 100.0, 1.0, 0.05, 0.0, 0.2, "put", method="alo")
    assert r.delta == pytest.approx(float(ref["delta"]), rel=1e-12)
    assert r.HasField("phi") and not r.HasField("gamma")


# ------------------------------------------------------------------------------ ImpliedVol
def test_implied_vol_round_trips_price() -> None:
    K = np.array([70.0, 95.0, 100.0, 130.0])
    vol = np.array([0.35, 0.22, 0.2, 0.28])
    typ = np.array(["put", "call", "put", "call"])
    prices = pricing.european(100.0, K, 0.75, R, Q, vol, typ, greeks="none")["price"]
    req = pb.ImpliedVolRequest()
    for k, p, t in zip(K, prices, typ, strict=True):
        req.options.add(
            price=p, spot=100.0, strike=k, expiry_years=0.75, rate=R, dividend_yield=Q,
            option_type=pb.CALL if t == "call" else pb.PUT,
        )  # fmt: skip
    # and three rows outside the bounds
    req.options.add(price=0.0, spot=100, strike=100, expiry_years=1, option_type=pb.CALL)
    req.options.add(price=1.0, spot=100, strike=50, expiry_years=1, option_type=pb.CALL)
    req.options.add(price=150.0, spot=100, strike=100, expiry_years=1, option_type=pb.CALL)
    res = implied.implied_vol(req, 100)
    got = [r.volatility for r in res.results[:4]]
    np.testing.assert_allclose(got, vol, rtol=1e-12)
    assert [r.status for r in res.results] == [pb.IV_OK] * 4 + [
        pb.IV_NON_POSITIVE,
        pb.IV_BELOW_INTRINSIC,
        pb.IV_ABOVE_UPPER,
    ]
    assert not any(r.HasField("volatility") for r in res.results[4:])
    c = res.counts
    assert (c.ok, c.non_positive, c.below_intrinsic, c.above_upper) == (4, 1, 1, 1)


def test_implied_vol_black76_and_errors() -> None:
    p = float(pricing.black76(105.0, 100.0, 0.5, 0.02, 0.3, "call", greeks="none")["price"])
    req = pb.ImpliedVolRequest(model=pb.MODEL_BLACK76)
    req.options.add(price=p, spot=105.0, strike=100.0, expiry_years=0.5, rate=0.02, option_type=1)
    assert implied.implied_vol(req, 10).results[0].volatility == pytest.approx(0.3, rel=1e-12)
    req.options.add(price=p, spot=105.0, strike=100.0, expiry_years=0.5, dividend_yield=0.01)
    with pytest.raises(ValueError, match=r"options\[1\]\.option_type must be CALL or PUT"):
        implied.implied_vol(req, 10)
    req.options[1].option_type = pb.PUT
    with pytest.raises(ValueError, match=r"options\[1\]\.dividend_yield .* MODEL_BLACK76"):
        implied.implied_vol(req, 10)
    bad = pb.ImpliedVolRequest()
    bad.options.add(price=1, spot=100, strike=100, expiry_years=1, option_type=pb.PUT)
    bad.options.add(price=1, spot=100, strike=-1, expiry_years=0, option_type=pb.PUT)
    strike_rule = r"options\[1\]\.strike must be finite and in \[1e-100, 1e\+100\]"
    with pytest.raises(ValueError, match=strike_rule):
        implied.implied_vol(bad, 10)
    bad.options[1].strike = 90
    expiry_rule = r"options\[1\]\.expiry_years must be finite and in \[1e-12, 100\] \(years\)"
    with pytest.raises(ValueError, match=expiry_rule):
        implied.implied_vol(bad, 10)
    bad.options[1].price = math.nan
    with pytest.raises(ValueError, match=r"options\[1\]\.price must be finite"):
        implied.implied_vol(bad, 10)
    with pytest.raises(ValueError, match="options: 2 options exceed the limit of 1"):
        implied.implied_vol(bad, 1)


# ------------------------------------------------------------------------------ surfaces
def test_fit_surface_recovers_svi_and_query_matches_the_library() -> None:
    store = surfaces.SurfaceStore(4)
    res = surfaces.fit(
        fit_request(svi_chain_quotes(SVI_TRUE, np.linspace(-0.6, 0.5, 23))), store, 1000
    )
    assert res.arbitrage_free and not res.violations and res.dropped_quotes == 0
    assert [s.expiry_years for s in res.slices] == sorted(SVI_TRUE)
    for s in res.slices:
        want = SVI_TRUE[s.expiry_years]
        got = (s.svi.a, s.svi.b, s.svi.rho, s.svi.m, s.svi.sigma)
        np.testing.assert_allclose(got, want.as_tuple(), atol=1e-8)
        assert s.forward == pytest.approx(S * math.exp((R - Q) * s.expiry_years), rel=1e-12)
        assert s.rmse_vol < 1e-10 and s.quotes_fitted == 23
    kept = store.get(res.surface_id)
    req = pb.QuerySurfaceRequest(surface_id=res.surface_id)
    pts = [(90.0, 0.25), (100.0, 0.6), (120.0, 1.0), (80.0, 1.5)]
    for k, t in pts:
        req.points.add(strike=k, expiry_years=t)
    vols = surfaces.query(req, store, 100).volatilities
    want = kept.surface.vol([k for k, _ in pts], [t for _, t in pts])
    assert list(vols) == want.tolist()
    F = S * math.exp((R - Q) * 1.0)  # at a slice expiry: the true SVI vol
    assert vols[2] == pytest.approx(
        math.sqrt(SVI_TRUE[1.0].total_variance([math.log(120 / F)])[0]), rel=1e-8
    )


def test_fit_surface_flags_butterfly_arbitrage_and_sabr() -> None:
    store = surfaces.SurfaceStore(4)
    quotes = svi_chain_quotes({1.0: VOGT}, np.linspace(-1.0, 1.6, 40), both=False)
    res = surfaces.fit(fit_request(quotes), store, 1000)
    assert not res.arbitrage_free
    assert [(v.kind, v.expiry_years) for v in res.violations] == [(pb.BUTTERFLY, 1.0)]
    assert 0.7 < res.violations[0].log_moneyness < 1.1 and res.violations[0].value < 0
    sabr = surfaces.fit(
        fit_request(
            svi_chain_quotes(SVI_TRUE, np.linspace(-0.3, 0.3, 9)),
            model=pb.SURFACE_SABR,
            sabr_beta=0.5,
        ),
        store,
        1000,
    )
    assert all(s.WhichOneof("params") == "sabr" and s.sabr.beta == 0.5 for s in sabr.slices)


def test_surface_store_is_a_bounded_lru() -> None:
    store = surfaces.SurfaceStore(2)
    req = fit_request(svi_chain_quotes({1.0: SVI_TRUE[1.0]}, np.linspace(-0.3, 0.3, 7)))
    a = surfaces.fit(req, store, 100).surface_id
    b = surfaces.fit(req, store, 100).surface_id
    store.get(a)  # a is now the most recently used
    c = surfaces.fit(req, store, 100).surface_id
    assert len(store) == 2 and store.get(a) and store.get(c)
    with pytest.raises(NotFoundError, match=f"surface_id '{b}': no such surface"):
        store.get(b)
    with pytest.raises(NotFoundError):
        surfaces.query(pb.QuerySurfaceRequest(surface_id="nope"), store, 10)
    with pytest.raises(ValueError, match="surface_id is required"):
        surfaces.query(pb.QuerySurfaceRequest(), store, 10)
    q = pb.QuerySurfaceRequest(surface_id=a)
    q.points.add(strike=100, expiry_years=1)
    q.points.add(strike=0, expiry_years=1)
    with pytest.raises(ValueError, match=r"points\[1\]\.strike must be finite and > 0"):
        surfaces.query(q, store, 10)


@pytest.mark.parametrize(
    "row,change,message",
    [
        (3, dict(strike=-1.0), r"quotes\[3\]\.strike must be finite and in \[1e-100, 1e\+100"),
        (2, dict(expiry_years=0.0), r"quotes\[2\]\.expiry_years must be finite and in \[1e-12"),
        (4, dict(ask=0.001), r"quotes\[4\]\.ask must be finite and >= bid"),
        (1, dict(option_type="OPTION_TYPE_UNSPECIFIED"), r"quotes\[1\]\.option_type"),
        (5, dict(mid=1.0), r"quotes\[5\]: give either mid or bid and ask"),
    ],
)
def test_fit_surface_validation_names_the_quote(
    row: int, change: dict[str, object], message: str
) -> None:
    quotes = svi_chain_quotes({1.0: SVI_TRUE[1.0]}, np.linspace(-0.3, 0.3, 7))
    quotes[row] = dict(quotes[row], **change)
    with pytest.raises(ValueError, match=message):
        surfaces.fit(fit_request(quotes), surfaces.SurfaceStore(1), 100)


def test_fit_surface_request_level_errors() -> None:
    quotes = svi_chain_quotes({1.0: SVI_TRUE[1.0]}, np.linspace(-0.3, 0.3, 3), both=False)
    with pytest.raises(ValueError, match=r"quotes: expiry 1\.0: svi fit needs at least 5 quotes"):
        surfaces.fit(fit_request(quotes), surfaces.SurfaceStore(1), 100)
    with pytest.raises(ValueError, match="quotes: the chain is empty"):
        surfaces.fit(fit_request([]), surfaces.SurfaceStore(1), 100)
    with pytest.raises(ValueError, match=r"sabr_beta must be in \[0, 1\]"):
        surfaces.fit(
            fit_request(quotes, model=pb.SURFACE_SABR, sabr_beta=2.0), surfaces.SurfaceStore(1), 100
        )
    with pytest.raises(ValueError, match="quotes: 3 quotes exceed the limit of 2"):
        surfaces.fit(fit_request(quotes), surfaces.SurfaceStore(1), 2)


# ------------------------------------------------------------------------------ StreamGreeks
def stream_request(**kw: object) -> pb.StreamGreeksRequest:
    req = pb.StreamGreeksRequest(venue="XNAS", symbol="XYZ", **kw)  # type: ignore[arg-type]
    for k, typ, style in ((90.0, pb.PUT, pb.EUROPEAN), (100.0, pb.CALL, pb.EUROPEAN),
                          (110.0, pb.PUT, pb.AMERICAN)):  # fmt: skip
        req.contracts.add(
            strike=k, expiry_years=0.5, option_type=typ, style=style, volatility=0.25,
            rate=0.04, dividend_yield=0.01,
        )  # fmt: skip
    return req


def quote(bid: float, ask: float, seq: int) -> market_pb2.Quote:
    return market_pb2.Quote(
        venue="XNAS", symbol="XYZ", bid_price=bid, ask_price=ask, sequence=seq,
        exchange_time_ns=1_700_000_000_000_000_000 + seq, receive_time_ns=seq,
    )  # fmt: skip


def test_repricer_sends_full_chain_then_changes_only() -> None:
    rp = ChainRepricer(stream_request(tolerance=1e-3), surfaces.SurfaceStore(1), 100)
    assert rp.subject == "md.XNAS.XYZ.quote"
    assert rp.on_quote(quote(0.0, 101.0, 1)) is None  # one-sided: skipped
    assert rp.on_quote(quote(101.0, 100.0, 2)) is None  # crossed: skipped
    first = rp.on_quote(quote(99.9, 100.1, 3))
    assert first is not None and first.full and first.sequence == 3 and first.spot == 100.0
    assert [r.index for r in first.rows] == [0, 1, 2]
    eu = pricing.european(100.0, [90.0, 100.0], 0.5, 0.04, 0.01, 0.25, ["put", "call"], "first")
    for i in (0, 1):
        for g in ("price", *logic.FIRST_ORDER):
            assert getattr(first.rows[i].result, g) == float(eu[g][i]), g
    am = pricing.american(100.0, 110.0, 0.5, 0.04, 0.01, 0.25, "put", method="alo")
    assert first.rows[2].result.price == pytest.approx(float(am["price"]), rel=1e-12)
    # same mid (wider spread): nothing moved, nothing sent
    assert rp.on_quote(quote(99.8, 100.2, 4)) is None
    # a move of 1e-5 in spot moves prices by < 1e-3: still nothing
    assert rp.on_quote(quote(99.90001, 100.10001, 5)) is None
    nxt = rp.on_quote(quote(100.9, 101.1, 6))
    assert (
        nxt is not None and not nxt.full and nxt.exchange_time_ns == quote(0, 0, 6).exchange_time_ns
    )
    assert [r.index for r in nxt.rows] == [0, 1, 2]
    assert nxt.rows[1].result.price == float(
        pricing.european(101.0, 100.0, 0.5, 0.04, 0.01, 0.25, "call", "none")["price"]
    )


def test_repricer_only_rows_beyond_tolerance() -> None:
    req = pb.StreamGreeksRequest(venue="V", symbol="S", tolerance=1e-4, greeks=pb.GREEKS_NONE)
    req.contracts.add(strike=100.0, expiry_years=1.0, option_type=pb.CALL, volatility=0.2)
    req.contracts.add(strike=1000.0, expiry_years=0.01, option_type=pb.CALL, volatility=0.2)
    rp = ChainRepricer(req, surfaces.SurfaceStore(1), 10)
    assert rp.on_quote(quote(99.0, 101.0, 1)) is not None
    upd = rp.on_quote(quote(99.5, 101.5, 2))  # the far OTM call stays at ~0
    assert upd is not None and [r.index for r in upd.rows] == [0]
    assert set(f.name for f, _ in upd.rows[0].result.ListFields()) == {"price"}


def test_repricer_vols_from_a_surface() -> None:
    store = surfaces.SurfaceStore(2)
    fitted = surfaces.fit(
        fit_request(svi_chain_quotes(SVI_TRUE, np.linspace(-0.6, 0.5, 23))), store, 1000
    )
    req = pb.StreamGreeksRequest(venue="V", symbol="S")
    req.contracts.add(
        strike=95.0,
        expiry_years=0.6,
        option_type=pb.PUT,
        surface_id=fitted.surface_id,
        rate=R,
        dividend_yield=Q,
    )
    rp = ChainRepricer(req, store, 10)
    vol = float(store.get(fitted.surface_id).surface.vol(95.0, 0.6))
    upd = rp.on_quote(quote(100.0, 100.0, 1))
    assert upd is not None
    ref = pricing.european(100.0, 95.0, 0.6, R, Q, vol, "put", "first")
    assert upd.rows[0].result.vega == float(ref["vega"])
    req.contracts[0].surface_id = "missing"
    with pytest.raises(NotFoundError, match=r"contracts\[0\]\.surface_id 'missing'"):
        ChainRepricer(req, store, 10)


@pytest.mark.parametrize(
    "change,message",
    [
        (dict(venue="a.b"), "venue must not contain '.'"),
        (dict(symbol=""), "symbol must not be empty"),
        (dict(tolerance=-1.0), "tolerance must be finite and >= 0"),
        (dict(greeks=pb.GREEKS_ALL), r"not available for American .*contracts\[2\]"),
    ],
)
def test_repricer_request_errors(change: dict[str, object], message: str) -> None:
    req = stream_request()
    for k, v in change.items():
        setattr(req, k, v)
    with pytest.raises(ValueError, match=message):
        ChainRepricer(req, surfaces.SurfaceStore(1), 10)


def test_repricer_row_errors() -> None:
    req = stream_request()
    req.contracts[1].volatility = -0.1
    vol_rule = r"contracts\[1\]\.volatility must be finite and in \[1e-08, 100\]"
    with pytest.raises(ValueError, match=vol_rule):
        ChainRepricer(req, surfaces.SurfaceStore(1), 10)
    req = stream_request()
    req.contracts[2].strike = 0.0
    with pytest.raises(ValueError, match=r"contracts\[2\]\.strike must be finite and > 0"):
        ChainRepricer(req, surfaces.SurfaceStore(1), 10)
    req = stream_request()
    req.contracts[0].ClearField("volatility")
    with pytest.raises(ValueError, match=r"contracts\[0\]: give volatility or surface_id"):
        ChainRepricer(req, surfaces.SurfaceStore(1), 10)
    with pytest.raises(ValueError, match="contracts: 3 contracts exceed the limit of 2"):
        ChainRepricer(stream_request(), surfaces.SurfaceStore(1), 2)
    # The double-boundary regime is priced (the library's tree), not refused.
    req = stream_request()
    req.contracts[2].rate, req.contracts[2].dividend_yield = -0.01, -0.02
    ChainRepricer(req, surfaces.SurfaceStore(1), 10)


def test_quote_mid() -> None:
    assert quote_mid(quote(99.0, 101.0, 1)) == 100.0
    assert quote_mid(quote(0.0, 0.0, 1)) is None
    assert quote_mid(quote(math.nan, 101.0, 1)) is None
