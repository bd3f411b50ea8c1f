"""Stress tests of a :class:`~tradecore.risk.book.Book` by exact repricing.

* :func:`stress_test`: hypothetical scenarios (relative spot shocks per underlying, absolute
  vol-point shocks per underlying, an absolute rate shift, an optional horizon).
* :func:`historical_stress`: every day of a history of log-returns applied to today's book; the
  worst days by P&L.
* :func:`spot_vol_grid`: P&L over a grid of spot shocks x vol shocks applied to every
  underlying at once.
* :func:`reverse_stress`: the most likely spot shock (smallest Mahalanobis distance) whose loss
  is a given amount.

P&L is value after the shock minus value now; options are repriced by
:func:`tradecore.risk.valuation.revalue` (the pricing kernels, exact) with time to expiry
``T - horizon_days / 252``, at intrinsic value once that is not above zero.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace

import numpy as np
import numpy.typing as npt
from scipy import optimize, stats

from tradecore.errors import TradecoreError, quote
from tradecore.pricing import DOMAIN
from tradecore.risk.book import KIND_AMERICAN, KIND_EQUITY, Book, finite_number
from tradecore.risk.greeks import check_book, unit_greeks
from tradecore.risk.parametric import annual_covariance
from tradecore.risk.valuation import revalue

FloatArray = npt.NDArray[np.float64]

#: Trading days per year: horizon_days / 252 is the horizon in years.
DAYS_PER_YEAR = 252.0
#: At most this many scenario x position cells in one call (each holds one float64 P&L).
MAX_CELLS = 20_000_000
#: horizon_days at most this (100 years, the pricing domain's longest expiry).
MAX_HORIZON_DAYS = 100.0 * DAYS_PER_YEAR


@dataclass(frozen=True)
class StressScenario:
    """A hypothetical scenario. ``spot_shocks``: relative shock per underlying symbol (-0.2 is
    a 20 % fall; > -1); ``vol_shocks``: absolute volatility shock per symbol (0.05 is +5 vol
    points; the shocked vol must stay > 0); ``rate_shock``: absolute rate shift (0.01 = +100
    bp); ``horizon_days``: days elapsed (options revalued with T - horizon_days / 252).
    Underlyings not named are unchanged."""

    name: str
    spot_shocks: Mapping[str, float] = field(default_factory=dict)
    vol_shocks: Mapping[str, float] = field(default_factory=dict)
    rate_shock: float = 0.0
    horizon_days: float = 0.0


@dataclass(frozen=True)
class StressResult:
    name: str
    #: Value after the shock minus value now.
    pnl: float
    #: The same per position, in book order.
    position_pnl: FloatArray


@dataclass(frozen=True)
class ReverseStress:
    #: Relative spot shock per underlying (exp(log_return) - 1), as StressScenario takes them.
    spot_shocks: dict[str, float]
    #: sqrt(x' Sigma_h^-1 x) of the log-return shock x.
    mahalanobis_distance: float
    #: The shock's P&L by exact repricing (= -loss to ~1e-10 relative).
    pnl: float
    #: P(a chi-square(n) variable >= distance^2): the probability of a shock at least this far.
    probability: float
    #: The log-return shock x per underlying.
    log_returns: dict[str, float] = field(default_factory=dict)


def _horizon(name: str, value: object) -> float:
    days = finite_number(name, value)
    if not 0.0 <= days <= MAX_HORIZON_DAYS:
        raise ValueError(f"{name}: must be in [0, {MAX_HORIZON_DAYS:g}], got {days!r}")
    return days / DAYS_PER_YEAR


def _check_spot(name: str, shock: float, spot: float) -> None:
    if shock <= -1.0:
        raise ValueError(f"{name}: a relative spot shock must be > -1, got {shock!r}")
    if spot * (1.0 + shock) > DOMAIN.spot_max:
        raise ValueError(f"{name}: the shocked spot {spot * (1.0 + shock):g} is too large")


def _check_vol(name: str, shock: float, vol: float) -> None:
    if not 0.0 < vol + shock <= DOMAIN.vol_max:
        raise ValueError(
            f"{name}: the shocked volatility {vol:g} + {shock:g} must be in (0, {DOMAIN.vol_max:g}]"
        )


def _check_cells(name: str, k: int, m: int) -> None:
    if k * m > MAX_CELLS:
        raise ValueError(
            f"{name}: {k} scenarios x {m} positions is more than {MAX_CELLS} P&L values in one call"
        )


def _shock_map(
    book: Book, at: str, shocks: object, check: str, index: dict[str, int]
) -> dict[int, float]:
    if not isinstance(shocks, Mapping):
        raise ValueError(f"{at}: expected a mapping of symbol to shock, got {quote(shocks)}")
    out: dict[int, float] = {}
    for sym, value in shocks.items():
        name = f"{at}[{sym!r}]"
        j = index.get(sym) if isinstance(sym, str) else None
        if j is None:
            raise ValueError(f"{name}: unknown underlying {quote(sym)} (not in the book's market)")
        x = finite_number(name, value)
        if check == "spot":
            _check_spot(name, x, float(book.spot[j]))
        else:
            _check_vol(name, x, float(book.volatility[j]))
        out[j] = x
    return out


def _scenario_state(
    book: Book, scenarios: Sequence[StressScenario]
) -> tuple[list[str], FloatArray, FloatArray, FloatArray, FloatArray]:
    if isinstance(scenarios, str | bytes) or not isinstance(scenarios, Sequence):
        raise ValueError(f"scenarios: expected a list of scenarios, got {quote(scenarios)}")
    k = len(scenarios)
    if k == 0:
        raise ValueError("scenarios: must not be empty")
    _check_cells("scenarios", k, book.n_positions)
    index = {s: i for i, s in enumerate(book.symbols)}
    names: list[str] = []
    spot = np.tile(book.spot, (k, 1))
    vol = np.tile(book.volatility, (k, 1))
    rate = np.full(k, book.rate)
    horizon = np.zeros(k)
    for i, sc in enumerate(scenarios):
        at = f"scenarios[{i}]"
        if not isinstance(sc, StressScenario):
            raise ValueError(f"{at}: expected a StressScenario, got {type(sc).__name__}")
        if not isinstance(sc.name, str) or not sc.name:
            raise ValueError(f"{at}.name: expected a non-empty string, got {quote(sc.name)}")
        names.append(sc.name)
        for j, x in _shock_map(book, f"{at}.spot_shocks", sc.spot_shocks, "spot", index).items():
            spot[i, j] *= 1.0 + x
        for j, x in _shock_map(book, f"{at}.vol_shocks", sc.vol_shocks, "vol", index).items():
            vol[i, j] += x
        dr = finite_number(f"{at}.rate_shock", sc.rate_shock)
        rate[i] += dr
        if abs(rate[i]) > DOMAIN.rate_max_abs:
            raise ValueError(
                f"{at}.rate_shock: the shocked rate {rate[i]:g} must be within "
                f"±{DOMAIN.rate_max_abs:g}"
            )
        horizon[i] = _horizon(f"{at}.horizon_days", sc.horizon_days)
    return names, spot, vol, rate, horizon


def _pnl(
    book: Book, spot: FloatArray, vol: FloatArray, rate: FloatArray, horizon: FloatArray
) -> FloatArray:
    """Position P&L per scenario, shape (k, m): one revalue call per distinct horizon (one in
    all when the scenarios share their horizon)."""
    base = revalue(book)
    out = np.empty((spot.shape[0], book.n_positions))
    for h in np.unique(horizon):
        rows = np.flatnonzero(horizon == h)
        out[rows] = revalue(book, spot[rows], vol[rows], rate[rows], float(h)) - base
    return out


def stress_test(book: Book, scenarios: Sequence[StressScenario]) -> list[StressResult]:
    """P&L of every scenario by exact repricing, in the order given. Raises ValueError naming
    the field for an empty list, an unknown symbol in a shock map, a non-finite shock, a spot
    shock <= -1, a vol shock that leaves the vol <= 0, a shocked rate beyond ±2, a negative
    horizon."""
    check_book(book)
    names, spot, vol, rate, horizon = _scenario_state(book, scenarios)
    pnl = _pnl(book, spot, vol, rate, horizon)
    return [StressResult(n, float(pnl[i].sum()), pnl[i]) for i, n in enumerate(names)]


def historical_stress(
    book: Book,
    returns: npt.ArrayLike,
    *,
    worst: int = 10,
    labels: Sequence[str] | None = None,
    horizon_days: float = 1.0,
) -> list[StressResult]:
    """Every day of ``returns`` (shape ``(days, n)``: log-returns of the book's underlyings, in
    ``book.symbols`` order; a 1-D series when the book has one underlying) applied to today's
    book (spot x exp(return), vols and rate unchanged, options aged ``horizon_days``), and the
    ``worst`` days by P&L returned, worst first (ties in day order), named
    ``"historical:<label>"`` (``labels[day]`` when given, else the day's index)."""
    check_book(book)
    n = book.n_underlyings
    try:
        r = np.array(returns, dtype=np.float64)
    except (TypeError, ValueError):
        raise ValueError(f"returns: expected a days x {n} array of numbers") from None
    if r.ndim == 1 and n == 1:
        r = r[:, None]
    if r.ndim != 2 or r.shape[1] != n or r.shape[0] == 0:
        raise ValueError(
            f"returns: expected shape (days >= 1, {n}) (one column per underlying), got {r.shape}"
        )
    bad = np.argwhere(~np.isfinite(r))
    if bad.size:
        i, j = (int(x) for x in bad[0])
        raise ValueError(f"returns[{i}][{j}]: must be finite, got {r[i, j]!r}")
    days = r.shape[0]
    _check_cells("returns", days, book.n_positions)
    if isinstance(worst, bool) or not isinstance(worst, int | np.integer) or worst < 1:
        raise ValueError(f"worst: must be an integer >= 1, got {quote(worst)}")
    if labels is not None:
        if (
            isinstance(labels, str | bytes)
            or not isinstance(labels, Sequence | np.ndarray)
            or len(labels) != days
        ):
            raise ValueError(f"labels: expected one label per day ({days})")
        for i, lab in enumerate(labels):
            if not isinstance(lab, str) or not lab:
                raise ValueError(f"labels[{i}]: expected a non-empty string, got {quote(lab)}")
    h = _horizon("horizon_days", horizon_days)
    spot = book.spot * np.exp(r)
    big = np.argwhere(spot > DOMAIN.spot_max)
    if big.size:
        i, j = (int(x) for x in big[0])
        raise ValueError(f"returns[{i}][{j}]: the shocked spot is too large ({r[i, j]!r})")
    pnl = revalue(book, spot, horizon=h) - revalue(book)
    total = pnl.sum(axis=1)
    order = np.argsort(total, kind="stable")[: int(worst)]
    return [
        StressResult(
            f"historical:{labels[i] if labels is not None else i}", float(total[i]), pnl[i]
        )
        for i in order.tolist()
    ]


def _shock_list(name: str, values: Sequence[float]) -> FloatArray:
    if isinstance(values, str | bytes) or not isinstance(values, Sequence | np.ndarray):
        raise ValueError(f"{name}: expected a list of numbers, got {quote(values)}")
    if len(values) == 0:
        raise ValueError(f"{name}: must not be empty")
    return np.array([finite_number(f"{name}[{i}]", v) for i, v in enumerate(values)])


def spot_vol_grid(
    book: Book,
    spot_shocks: Sequence[float],
    vol_shocks: Sequence[float],
    horizon_days: float = 0.0,
) -> FloatArray:
    """Book P&L, shape ``(len(spot_shocks), len(vol_shocks))``: entry [i, j] applies relative
    spot shock ``spot_shocks[i]`` and absolute vol shock ``vol_shocks[j]`` to every underlying
    at once (and ages options ``horizon_days``). One revalue call."""
    check_book(book)
    ds = _shock_list("spot_shocks", spot_shocks)
    dv = _shock_list("vol_shocks", vol_shocks)
    _check_cells("spot_shocks x vol_shocks", ds.size * dv.size, book.n_positions)
    for i, x in enumerate(ds.tolist()):
        _check_spot(f"spot_shocks[{i}]", x, float(book.spot.max()))
    for j, x in enumerate(dv.tolist()):
        _check_vol(f"vol_shocks[{j}]", x, float(book.volatility.min()))
        _check_vol(f"vol_shocks[{j}]", x, float(book.volatility.max()))
    h = _horizon("horizon_days", horizon_days)
    spot = book.spot * (1.0 + ds[:, None, None])  # (a, 1, n)
    vol = book.volatility + dv[None, :, None]  # (1, b, n)
    total: FloatArray = (revalue(book, spot, vol, horizon=h) - revalue(book)).sum(axis=-1)
    return total


# --- reverse stress ------------------------------------------------------------------------


def _horizon_factor(book: Book, h: float, covariance: npt.ArrayLike | None) -> FloatArray:
    """A factor A with A A' = Sigma_h (the covariance of the log-returns over the horizon)."""
    c, _ = annual_covariance(book, covariance)
    try:
        lower = np.linalg.cholesky(c)
    except np.linalg.LinAlgError:
        raise ValueError(
            "covariance: must be positive definite (the Mahalanobis distance needs its inverse)"
        ) from None
    return np.asarray(lower * math.sqrt(h), dtype=np.float64)


def _log_bounds(book: Book) -> tuple[FloatArray, FloatArray]:
    """The log-return range the search may move each underlying over (the pricing domain's
    spots, with a factor 10 of room)."""
    lo = math.log(DOMAIN.spot_min * 10.0) - np.log(book.spot)
    hi = math.log(DOMAIN.spot_max / 10.0) - np.log(book.spot)
    return np.asarray(lo, dtype=np.float64), np.asarray(hi, dtype=np.float64)


def _slope_at_infinity(book: Book, h: float) -> FloatArray:
    """Per underlying: d value / d spot as the spot goes to infinity: units x 1 for equities,
    American calls and expired calls, x exp(-q tau) for live European calls, 0 for puts."""
    slope = np.zeros(book.n_underlyings)
    q = book.dividend_yield[book.underlying]
    tau = np.maximum(book.expiry - h, 0.0)
    calls = (book.kind != KIND_EQUITY) & (book.option_type > 0)
    per = np.where(book.kind == KIND_EQUITY, 1.0, 0.0)
    per = np.where(calls & (book.kind != KIND_AMERICAN), np.exp(-q * tau), per)
    per = np.where(calls & (book.kind == KIND_AMERICAN), 1.0, per)
    np.add.at(slope, book.underlying, book.units * per)
    return slope


def _max_loss(book: Book, h: float) -> tuple[float, FloatArray]:
    """The book's largest loss at the horizon over the spots the search can reach (inf when
    unbounded), and log-returns that reach it (or, when unbounded, a loss beyond any finite
    target: the reachable edge of each underlying the book is net short).

    Each position depends on one underlying, so the value at the horizon is a sum of one
    function per underlying and its infimum the sum of their infima: -inf when the value's
    slope at infinity is negative (net short the underlying), otherwise the smallest value on a
    log-spot grid over the whole reachable range, refined by a bounded scalar minimisation
    between the grid neighbours of the smallest point."""
    slope = _slope_at_infinity(book, h)
    lo, hi = _log_bounds(book)
    worst_x = np.zeros(book.n_underlyings)
    short = slope < -1e-12 * float(np.abs(book.units).sum())
    if short.any():
        worst_x[short] = hi[short]
        return math.inf, worst_x
    grid = np.linspace(0.0, 1.0, 241)
    infimum = 0.0
    for j in range(book.n_underlyings):
        cols = book.underlying == j
        if not cols.any():
            continue
        sub = _sub_book(book, cols)
        sj = float(book.spot[j])
        # The grid, plus every strike on this underlying: a payoff's kinks are where a
        # narrow minimum (a short butterfly's) sits.
        strikes = np.log(sub.strike[np.isfinite(sub.strike)] / sj)
        x = np.unique(np.concatenate([lo[j] + grid * (hi[j] - lo[j]), strikes, [0.0]]))
        x = x[(x >= lo[j]) & (x <= hi[j])]
        spot = np.tile(book.spot, (x.size, 1))
        spot[:, j] = sj * np.exp(x)
        per = revalue(sub, spot, horizon=h).sum(axis=1)
        k = int(np.argmin(per))
        a, b = x[max(k - 1, 0)], x[min(k + 1, x.size - 1)]

        def value_at(t: float, sub: Book = sub, sj: float = sj, j: int = j) -> float:
            spot = sub.spot.copy()
            spot[j] = sj * math.exp(t)
            return float(revalue(sub, spot, horizon=h).sum())

        res = optimize.minimize_scalar(value_at, bounds=(a, b), method="bounded")
        if float(res.fun) < float(per[k]):
            infimum += float(res.fun)
            worst_x[j] = float(res.x)
        else:
            infimum += float(per[k])
            worst_x[j] = float(x[k])
    return float(revalue(book).sum()) - infimum, worst_x


def _sub_book(book: Book, cols: npt.NDArray[np.bool_]) -> Book:
    """The positions ``cols`` of ``book`` (same market)."""
    return replace(
        book,
        underlying=book.underlying[cols],
        kind=book.kind[cols],
        option_type=book.option_type[cols],
        strike=book.strike[cols],
        expiry=book.expiry[cols],
        units=book.units[cols],
        positions=(),
    )


def reverse_stress(
    book: Book,
    loss: float,
    *,
    horizon_days: float = 1.0,
    covariance: npt.ArrayLike | None = None,
) -> ReverseStress:
    """The most likely log-return shock x of the underlyings whose exact loss is ``loss``.

    "Most likely" is the smallest Mahalanobis distance sqrt(x' Sigma_h^-1 x), Sigma_h the
    covariance of the log-returns over ``horizon_days`` (/ 252 years): from the market's vols
    and correlation (repaired when not positive definite), or ``covariance`` (annualised,
    positive definite) x h. The loss is value now minus value at the horizon with spots
    S x exp(x) (vols and rate unchanged, options aged h). The search starts from the linear
    solution x0 = -(loss - carry) Sigma_h d / (d' Sigma_h d) (d the dollar deltas, carry the
    loss of the unshocked book at the horizon), moved along its ray onto the exact loss, and
    SLSQP (scipy) minimises the distance under the exact-repricing constraint; the answer is
    checked (constraint to 1e-10 relative, the shock parallel to the constraint's gradient)
    before it is returned.

    Raises ValueError when ``loss`` is not a positive number or is not reachable (the book's
    largest loss over all spot moves is below or at it, e.g. a long call cannot lose more
    than its premium) and TradecoreError when the search does not converge.
    """
    check_book(book)
    target = finite_number("loss", loss)
    if target <= 0.0:
        raise ValueError(f"loss: must be > 0, got {target!r}")
    h = _horizon("horizon_days", horizon_days)
    if h <= 0.0:
        raise ValueError("horizon_days: must be > 0 (the covariance over the horizon is 0)")
    A = _horizon_factor(book, h, covariance)
    worst, worst_x = _max_loss(book, h)
    if target >= worst * (1.0 - 1e-9):
        raise ValueError(
            f"loss: {target:g} is not reachable: the book's largest loss over all spot moves "
            f"at the horizon is {worst:g}"
        )
    value = float(revalue(book).sum())
    n = book.n_underlyings
    u = book.underlying
    log_min, log_max = _log_bounds(book)

    def shock(z: FloatArray) -> FloatArray:
        return np.asarray(np.clip(A @ z, log_min, log_max), dtype=np.float64)

    def g(z: FloatArray) -> float:
        """(loss(x) - target) / target at x = A z."""
        spot = book.spot * np.exp(shock(z))
        return (value - float(revalue(book, spot, horizon=h).sum())) / target - 1.0

    def grad_g(z: FloatArray) -> FloatArray:
        spot = book.spot * np.exp(shock(z))
        d = unit_greeks(book, spot=spot, horizon=h)["delta"] * book.units * spot[u]
        dollar = np.bincount(u, weights=d, minlength=n)  # d value / d x
        return np.asarray(-(A.T @ dollar) / target, dtype=np.float64)

    def onto_ray(direction: FloatArray, end: float | None = None) -> FloatArray | None:
        """The nearest point t * direction (0 < t <= end) where the loss crosses the target:
        a scan of t (ratio 1.05, one revalue call, out to ``end`` or to where a spot leaves
        the reachable range) for the first crossing, then Brent's method between its two scan
        points."""
        below = g(np.zeros(n)) < 0.0  # which side of the target the unshocked book is on
        d = direction / float(np.linalg.norm(direction))
        step = A @ d
        with np.errstate(divide="ignore", invalid="ignore"):
            reach = np.where(step > 0, log_max / step, np.where(step < 0, log_min / step, np.inf))
        t_max = float(reach.min()) if end is None else end
        if not math.isfinite(t_max) or t_max <= 0.0:
            return None
        t_min = min(0.05, t_max / 2.0)
        ts = np.geomspace(t_min, t_max, int(math.log(t_max / t_min) / math.log(1.05)) + 2)
        X = np.clip(ts[:, None] * step, log_min, log_max)
        losses = value - revalue(book, book.spot * np.exp(X), horizon=h).sum(axis=1)
        crossed = np.flatnonzero((losses >= target) if below else (losses <= target))
        if crossed.size == 0:
            return None
        k = int(crossed[0])
        lo = float(ts[k - 1]) if k > 0 else 0.0
        root = optimize.brentq(lambda t: g(t * d), lo, float(ts[k]), xtol=1e-14, rtol=1e-14)
        return np.asarray(root * d, dtype=np.float64)

    dollar0 = -grad_g(np.zeros(n)) * target  # A' d
    carry = (g(np.zeros(n)) + 1.0) * target
    norm2 = float(dollar0 @ dollar0)
    starts: list[FloatArray] = []
    z0 = -(target - carry) * dollar0 / norm2 if norm2 > 0.0 else None
    if z0 is not None and float(z0 @ z0) > 0.0:
        on = onto_ray(z0)
        if on is not None:
            starts.append(on)
    # The segment to the point of the largest loss: the loss crosses the target on it.
    z_worst = np.asarray(np.linalg.solve(A, np.clip(worst_x, log_min, log_max)), dtype=np.float64)
    if float(z_worst @ z_worst) > 0.0:
        on = onto_ray(z_worst, float(np.linalg.norm(z_worst)))
        if on is not None:
            starts.append(on)
    if not starts and n <= 64:
        # The axes of z (a delta-neutral book has no linear direction).
        for j in range(n):
            for sign in (1.0, -1.0):
                e = np.zeros(n)
                e[j] = sign
                on = onto_ray(e)
                if on is not None:
                    starts.append(on)
    if not starts and z0 is not None:
        starts.append(z0)
    # The unshocked book losing exactly the target (by decay) is its own answer.
    best: FloatArray | None = np.zeros(n) if abs(carry / target - 1.0) <= 1e-12 else None
    for start in sorted(starts, key=lambda s: float(s @ s))[: 4 if best is None else 0]:
        res = optimize.minimize(
            lambda z: 0.5 * float(z @ z),
            start,
            jac=lambda z: z,
            method="SLSQP",
            constraints=[{"type": "eq", "fun": g, "jac": grad_g}],
            options={"maxiter": 200, "ftol": 1e-14},
        )
        z = np.asarray(res.x, dtype=np.float64)
        if not np.isfinite(z).all():
            continue
        # Land exactly on the constraint along the ray of the optimum.
        norm = float(np.linalg.norm(z))
        if norm == 0.0:
            continue
        if abs(g(z)) > 1e-11:
            landed = onto_ray(z / norm)
            if landed is None:
                continue
            z = landed
        if abs(g(z)) > 1e-10:
            continue
        gz = grad_g(z)
        cosine = abs(float(z @ gz)) / (float(np.linalg.norm(z)) * float(np.linalg.norm(gz)))
        if cosine < 1.0 - 1e-6:
            continue
        if best is None or float(z @ z) < float(best @ best):
            best = z
    if best is None:
        raise TradecoreError(
            f"reverse stress: no shock with loss {target:g} found (the search did not converge)"
        )
    x = shock(best)
    spot = book.spot * np.exp(x)
    pnl = float(revalue(book, spot, horizon=h).sum()) - value
    distance = float(np.linalg.norm(best))
    return ReverseStress(
        spot_shocks={s: float(np.expm1(x[i])) for i, s in enumerate(book.symbols)},
        mahalanobis_distance=distance,
        pnl=pnl,
        probability=float(stats.chi2.sf(distance * distance, n)),
        log_returns={s: float(x[i]) for i, s in enumerate(book.symbols)},
    )


__all__ = [
    "DAYS_PER_YEAR",
    "MAX_CELLS",
    "ReverseStress",
    "StressResult",
    "StressScenario",
    "historical_stress",
    "reverse_stress",
    "spot_vol_grid",
    "stress_test",
]
