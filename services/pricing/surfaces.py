"""FitSurface and QuerySurface: option chains → SVI/SABR surfaces kept in a bounded LRU."""

from __future__ import annotations

import math
import threading
import uuid
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from tradecore.chain import OptionChain
from tradecore.errors import quote
from tradecore.pricing import DOMAIN
from tradecore.surface import SabrParams, SviParams, VolSurface, fit_surface
from tradecore_api.pricing.v1 import pricing_pb2 as pb

from ..common.errors import NotFoundError
from .logic import TYPE_CODE
from .validate import check_count, check_rows

_MODEL = {pb.SURFACE_MODEL_UNSPECIFIED: "svi", pb.SURFACE_SVI: "svi", pb.SURFACE_SABR: "sabr"}
_KIND = {"butterfly": pb.BUTTERFLY, "calendar": pb.CALENDAR}
# Distinct expiries per FitSurface: each is its own least-squares fit (tens of milliseconds when
# the quotes are noisy), and this bound keeps the largest request well inside the gateway's
# 60 s deadline (see docs/api.md).
MAX_EXPIRIES = 128


@dataclass(frozen=True, slots=True)
class KeptSurface:
    surface_id: str
    underlying: str
    surface: VolSurface


class SurfaceStore:
    """Fitted surfaces by id: a thread-safe LRU of at most ``capacity`` entries (a lookup counts
    as a use)."""

    def __init__(self, capacity: int) -> None:
        if capacity < 1:
            raise ValueError(f"TRADECORE_PRICING_MAX_SURFACES must be >= 1 (got {capacity})")
        self.capacity = capacity
        self._items: OrderedDict[str, KeptSurface] = OrderedDict()
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._items)

    def add(self, underlying: str, surface: VolSurface) -> KeptSurface:
        kept = KeptSurface(uuid.uuid4().hex, underlying, surface)
        with self._lock:
            self._items[kept.surface_id] = kept
            while len(self._items) > self.capacity:
                self._items.popitem(last=False)
        return kept

    def get(self, surface_id: str, field: str = "surface_id") -> KeptSurface:
        if not surface_id:
            raise ValueError(f"{field} is required")
        with self._lock:
            kept = self._items.get(surface_id)
            if kept is not None:
                self._items.move_to_end(surface_id)
        if kept is None:
            raise NotFoundError(
                f"{field} {quote(surface_id)}: no such surface (never fitted here, or evicted)"
            )
        return kept


def _chain(request: pb.FitSurfaceRequest, max_quotes: int) -> OptionChain:
    quotes = request.quotes
    n = len(quotes)
    if n == 0:
        raise ValueError("quotes: the chain is empty")
    check_count("quotes", n, max_quotes, "quotes")
    strike = np.empty(n)
    expiry = np.empty(n)
    bid = np.zeros(n)
    ask = np.zeros(n)
    mid = np.empty(n)
    codes = np.empty(n, dtype=np.int8)
    for i, q in enumerate(quotes):
        strike[i] = q.strike
        expiry[i] = q.expiry_years
        code = TYPE_CODE.get(q.option_type)
        if code is None:
            raise ValueError(f"quotes[{i}].option_type must be CALL or PUT")
        codes[i] = code
        if q.HasField("mid"):
            if q.HasField("bid") or q.HasField("ask"):
                raise ValueError(f"quotes[{i}]: give either mid or bid and ask, not both")
            mid[i] = q.mid
        elif q.HasField("bid") and q.HasField("ask"):
            bid[i], ask[i] = q.bid, q.ask
            mid[i] = 0.5 * (q.bid + q.ask)
        else:
            raise ValueError(f"quotes[{i}]: give mid, or both bid and ask")
    expiries = np.unique(expiry)
    if expiries.size > MAX_EXPIRIES:
        raise ValueError(
            f"quotes: {expiries.size} distinct expiry_years exceed the limit of {MAX_EXPIRIES} "
            "per surface"
        )
    check_rows(
        "quotes",
        [
            ("strike", strike, DOMAIN.strike_ok(strike), DOMAIN.strike_rule),
            ("expiry_years", expiry, DOMAIN.expiry_ok(expiry), DOMAIN.expiry_rule),
            ("bid", bid, bid >= 0, ">= 0"),
            ("ask", ask, ask >= bid, ">= bid"),
            ("mid", mid, mid >= 0, ">= 0"),
        ],
    )
    spot = request.spot if request.HasField("spot") else None
    if spot is not None and not (math.isfinite(spot) and DOMAIN.spot_ok(spot)):
        raise ValueError(f"spot must be finite and {DOMAIN.spot_rule} (got {spot!r})")
    for name in ("rate", "dividend_yield"):
        value = getattr(request, name)
        if not (math.isfinite(value) and DOMAIN.rate_ok(value)):
            raise ValueError(f"{name} must be finite and {DOMAIN.rate_rule} (got {value!r})")
    return OptionChain.from_quotes(
        strike,
        expiry,
        codes,
        mid=mid,
        spot=spot,
        rate=request.rate,
        dividend=request.dividend_yield,
    )


class FitAbandoned(Exception):
    """Raised inside a fit whose caller has gone (cancelled, or past its deadline)."""


def fit(
    request: pb.FitSurfaceRequest,
    store: SurfaceStore,
    max_quotes: int,
    checkpoint: Callable[[int, int], None] | None = None,
) -> pb.FitSurfaceResponse:
    """Fit, keep and describe a surface. CPU-bound (scipy): run it off the event loop.

    ``checkpoint(fitted, total)`` runs before each expiry (see tradecore.surface.fit_surface):
    it counts progress and raises FitAbandoned to stop a fit nobody waits for."""
    model = _MODEL.get(request.model)
    if model is None:
        raise ValueError(f"model must be SURFACE_SVI or SURFACE_SABR (got {request.model})")
    beta = request.sabr_beta if request.HasField("sabr_beta") else 1.0
    if not (math.isfinite(beta) and 0.0 <= beta <= 1.0):
        raise ValueError(f"sabr_beta must be in [0, 1] (got {beta!r})")
    if request.HasField("sabr_beta") and model != "sabr":
        raise ValueError("sabr_beta is only for model SURFACE_SABR")
    chain = _chain(request, max_quotes)
    try:
        surface = fit_surface(
            chain, "svi" if model == "svi" else "sabr", beta=beta, checkpoint=checkpoint
        )
    except ValueError as exc:
        # the library names its own arguments (chain, spot); say which request field it is
        text = str(exc)
        raise ValueError(
            "quotes: " + text.removeprefix("chain: ") if text.startswith("chain: ") else text
        ) from None
    kept = store.add(request.underlying, surface)
    return describe(kept)


def describe(kept: KeptSurface) -> pb.FitSurfaceResponse:
    s = kept.surface
    response = pb.FitSurfaceResponse(
        surface_id=kept.surface_id,
        underlying=kept.underlying,
        model=pb.SURFACE_SVI if s.model == "svi" else pb.SURFACE_SABR,
        arbitrage_free=s.diagnostics.arbitrage_free,
        dropped_quotes=s.diagnostics.dropped_quotes,
    )
    for sl in s.slices:
        out = response.slices.add(
            expiry_years=sl.expiry,
            forward=sl.forward,
            rmse_vol=float(sl.rmse or 0.0),
            quotes_fitted=sl.n_quotes,
        )
        p = sl.params
        if isinstance(p, SviParams):
            out.svi.CopyFrom(pb.SviParameters(a=p.a, b=p.b, rho=p.rho, m=p.m, sigma=p.sigma))
        elif isinstance(p, SabrParams):
            out.sabr.CopyFrom(pb.SabrParameters(alpha=p.alpha, beta=p.beta, rho=p.rho, nu=p.nu))
    for v in s.diagnostics.violations:
        response.violations.add(
            kind=_KIND[v.kind], expiry_years=v.expiry, log_moneyness=v.k, value=v.value
        )
    return response


def query(
    request: pb.QuerySurfaceRequest, store: SurfaceStore, max_points: int
) -> pb.QuerySurfaceResponse:
    kept = store.get(request.surface_id)
    points = request.points
    n = len(points)
    check_count("points", n, max_points, "points")
    if n == 0:
        return pb.QuerySurfaceResponse()
    strike = np.fromiter((p.strike for p in points), np.float64, n)
    expiry = np.fromiter((p.expiry_years for p in points), np.float64, n)
    check_rows(
        "points",
        [("strike", strike, strike > 0, "> 0"), ("expiry_years", expiry, expiry >= 0, ">= 0")],
    )
    vols = kept.surface.vol(strike, expiry)
    return pb.QuerySurfaceResponse(volatilities=vols.tolist())
