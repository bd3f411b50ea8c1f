"""Compare tradecore.risk with ORE (Open Source Risk Engine) on one small equity-option book.

Not a pytest test: ORE is not a project dependency. Install it into a private venv
(``.venv/bin/pip install open-source-risk-engine``) and run ``python bench/ore_peer.py``.

The book and market are defined once below (:data:`MARKET`, :data:`POSITIONS`); the script
writes ORE's XML/CSV inputs for them into a temporary directory, runs ORE through its Python
bindings (``ORE.OREApp``), runs ``tradecore.risk`` on the same inputs and prints one table:

* NPV per trade and in total: ORE (``EquityOption`` with ``AnalyticEuropeanEngine``,
  ``EquityPosition``) against :func:`tradecore.risk.valuation.revalue`. Flat zero curve,
  flat dividend yield, constant volatility, every day counter ACT/365F, so ``expiry_years`` is
  (expiry date - as-of date) / 365 exactly. Exit status 1 if a trade disagrees by more than
  :data:`NPV_RTOL` relative.
* Parametric VaR: ORE's ``parametricVar`` analytic (Delta, Cornish-Fisher) over the deltas and
  gammas of its own ``sensitivity`` run (relative spot shifts, central differences) against
  :func:`tradecore.risk.parametric.parametric_var` / ``cornish_fisher_var`` with the same
  covariance. ORE's model is ``P&L = sum_i delta_i x_i + 1/2 sum_ij gamma_ij x_i x_j`` with
  ``x_i`` the move of risk factor ``i`` in units of its sensitivity shift; for a relative spot
  shift ``s`` that is ``x_i = (dS_i / S_i) / s``, so ORE's covariance is ours (of simple returns
  over the horizon, ``Sigma h``) divided by ``s^2``. ORE has no time-decay term; ours adds
  ``theta h`` to the P&L, so the table compares ORE with our figure less that drift and prints
  the drift.
* Historical-simulation VaR and ES: ORE's ``historicalSimulationVar`` over a scenario file of
  spot levels (synthetic fat-tailed history, fixed seed) against the same days' log-returns
  in our model. ORE revalues every scenario at the as-of date (no time passes); our
  :func:`tradecore.risk.historical.historical_var` revalues at ``T - h``. The table compares
  ORE with our kernels' losses at ``h = 0`` and the same order statistic
  (:func:`tradecore.risk.result.var_es`) and prints ``historical_var``'s own figures below it.
* Whole-run wall times of both (ORE: reading the ore.xml, market and portfolio build,
  sensitivities or scenarios, report writing; ours: the library calls), as ratios.
"""

from __future__ import annotations

import argparse
import csv
import datetime as dt
import math
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from tradecore.risk.book import Instrument, Market, Position, Underlying, book_arrays
from tradecore.risk.historical import historical_var
from tradecore.risk.parametric import cornish_fisher_var, parametric_var, sensitivities
from tradecore.risk.result import var_es
from tradecore.risk.valuation import revalue

#: NPVs must agree to this relative tolerance (per trade) or the script exits 1.
NPV_RTOL = 1e-8

CCY = "EUR"
ASOF = dt.date(2025, 1, 15)
#: Relative spot shift of ORE's sensitivity run (central differences).
SPOT_SHIFT = 1e-4
CONFIDENCE = 0.99
HORIZON_DAYS = 1.0

MARKET = Market(
    rate=0.03,
    underlyings=(
        Underlying("EQA", spot=100.0, volatility=0.20, dividend_yield=0.01),
        Underlying("EQB", spot=50.0, volatility=0.35, dividend_yield=0.02),
    ),
    correlation=[[1.0, 0.6], [0.6, 1.0]],
)


def _option(underlying: str, kind: str, strike: float, days: int, quantity: float) -> Position:
    return Position(
        Instrument(
            f"{underlying}-{kind[0].upper()}{strike:g}-{days}D",
            kind="option",
            option_type=kind,  # type: ignore[arg-type]
            style="european",
            strike=strike,
            expiry_years=days / 365.0,
            underlying=underlying,
        ),
        quantity,
    )


#: Options: (underlying, type, strike, days to expiry, contracts of 100); equity: shares.
POSITIONS: tuple[Position, ...] = (
    _option("EQA", "call", 100.0, 182, 10.0),
    _option("EQA", "put", 95.0, 365, -8.0),
    _option("EQA", "call", 110.0, 91, -15.0),
    _option("EQB", "put", 50.0, 91, 20.0),
    _option("EQB", "call", 55.0, 273, 12.0),
    Position(Instrument("EQA"), -300.0),
    Position(Instrument("EQB"), 500.0),
)


# ----------------------------------------------------------------------------- ORE inputs


def _trade_id(i: int, p: Position) -> str:
    return f"T{i}_{p.instrument.symbol}"


def _expiry_date(p: Position) -> dt.date:
    days = round(p.instrument.expiry_years * 365.0)
    return ASOF + dt.timedelta(days=days)


def portfolio_xml(positions: tuple[Position, ...]) -> str:
    trades = []
    for i, p in enumerate(positions):
        ins = p.instrument
        if ins.kind == "equity":
            units = p.quantity * (1.0 if p.multiplier is None else p.multiplier)
            trades.append(
                f"""  <Trade id="{_trade_id(i, p)}">
    <TradeType>EquityPosition</TradeType>
    <Envelope/>
    <EquityPositionData>
      <Quantity>{units!r}</Quantity>
      <Underlying><Type>Equity</Type><Name>{ins.underlying_symbol}</Name></Underlying>
    </EquityPositionData>
  </Trade>"""
            )
            continue
        units = p.quantity * (100.0 if p.multiplier is None else p.multiplier)
        trades.append(
            f"""  <Trade id="{_trade_id(i, p)}">
    <TradeType>EquityOption</TradeType>
    <Envelope/>
    <EquityOptionData>
      <OptionData>
        <LongShort>{"Long" if units > 0 else "Short"}</LongShort>
        <OptionType>{"Call" if ins.option_type == "call" else "Put"}</OptionType>
        <Style>European</Style>
        <Settlement>Cash</Settlement>
        <PayOffAtExpiry>true</PayOffAtExpiry>
        <ExerciseDates><ExerciseDate>{_expiry_date(p).isoformat()}</ExerciseDate></ExerciseDates>
      </OptionData>
      <Name>{ins.underlying_symbol}</Name>
      <Currency>{CCY}</Currency>
      <Strike>{ins.strike!r}</Strike>
      <Quantity>{abs(units)!r}</Quantity>
    </EquityOptionData>
  </Trade>"""
        )
    return "<Portfolio>\n" + "\n".join(trades) + "\n</Portfolio>\n"


CONVENTIONS_XML = f"""<Conventions>
  <Zero>
    <Id>{CCY}-ZERO</Id>
    <TenorBased>true</TenorBased>
    <DayCounter>A365</DayCounter>
    <Compounding>Continuous</Compounding>
    <CompoundingFrequency>Annual</CompoundingFrequency>
    <TenorCalendar>NullCalendar</TenorCalendar>
    <SpotLag>0</SpotLag>
    <SpotCalendar>NullCalendar</SpotCalendar>
    <RollConvention>Unadjusted</RollConvention>
    <EOM>false</EOM>
  </Zero>
</Conventions>
"""

TENORS = ("1M", "6M", "1Y", "2Y", "5Y", "10Y")
DISCOUNT_CURVE = f"{CCY}-FLAT"


def curveconfig_xml(market: Market) -> str:
    quotes = "".join(f"<Quote>ZERO/RATE/{CCY}/{DISCOUNT_CURVE}/A365/{t}</Quote>" for t in TENORS)
    eq_curves = []
    eq_vols = []
    for u in market.underlyings:
        dq = "".join(f"<Quote>EQUITY_DIVIDEND/RATE/{u.symbol}/{CCY}/{t}</Quote>" for t in TENORS)
        eq_curves.append(
            f"""    <EquityCurve>
      <CurveId>{u.symbol}</CurveId>
      <CurveDescription/>
      <Currency>{CCY}</Currency>
      <ForecastingCurve>{DISCOUNT_CURVE}</ForecastingCurve>
      <Type>DividendYield</Type>
      <SpotQuote>EQUITY/PRICE/{u.symbol}/{CCY}</SpotQuote>
      <Quotes>{dq}</Quotes>
      <DayCounter>A365</DayCounter>
      <DividendInterpolation>
        <InterpolationVariable>Zero</InterpolationVariable>
        <InterpolationMethod>Linear</InterpolationMethod>
      </DividendInterpolation>
      <Extrapolation>true</Extrapolation>
    </EquityCurve>"""
        )
        eq_vols.append(
            f"""    <EquityVolatility>
      <CurveId>{u.symbol}</CurveId>
      <CurveDescription/>
      <Currency>{CCY}</Currency>
      <DayCounter>A365</DayCounter>
      <Constant><Quote>EQUITY_OPTION/RATE_LNVOL/{u.symbol}/{CCY}/1Y/ATMF</Quote></Constant>
    </EquityVolatility>"""
        )
    return f"""<CurveConfiguration>
  <YieldCurves>
    <YieldCurve>
      <CurveId>{DISCOUNT_CURVE}</CurveId>
      <CurveDescription>flat continuously compounded zero curve</CurveDescription>
      <Currency>{CCY}</Currency>
      <DiscountCurve/>
      <Segments>
        <Direct>
          <Type>Zero</Type>
          <Quotes>{quotes}</Quotes>
          <Conventions>{CCY}-ZERO</Conventions>
        </Direct>
      </Segments>
      <InterpolationVariable>Zero</InterpolationVariable>
      <InterpolationMethod>Linear</InterpolationMethod>
      <YieldCurveDayCounter>A365</YieldCurveDayCounter>
      <Extrapolation>true</Extrapolation>
    </YieldCurve>
  </YieldCurves>
  <EquityCurves>
{chr(10).join(eq_curves)}
  </EquityCurves>
  <EquityVolatilities>
{chr(10).join(eq_vols)}
  </EquityVolatilities>
</CurveConfiguration>
"""


def todaysmarket_xml(market: Market) -> str:
    curves = "".join(
        f'<EquityCurve name="{u.symbol}">Equity/{CCY}/{u.symbol}</EquityCurve>'
        for u in market.underlyings
    )
    vols = "".join(
        f'<EquityVolatility name="{u.symbol}">EquityVolatility/{CCY}/{u.symbol}</EquityVolatility>'
        for u in market.underlyings
    )
    return f"""<TodaysMarket>
  <Configuration id="default"/>
  <DiscountingCurves id="default">
    <DiscountingCurve currency="{CCY}">Yield/{CCY}/{DISCOUNT_CURVE}</DiscountingCurve>
  </DiscountingCurves>
  <EquityCurves id="default">{curves}</EquityCurves>
  <EquityVolatilities id="default">{vols}</EquityVolatilities>
</TodaysMarket>
"""


PRICINGENGINE_XML = """<PricingEngines>
  <Product type="EquityOption">
    <Model>BlackScholesMerton</Model>
    <ModelParameters/>
    <Engine>AnalyticEuropeanEngine</Engine>
    <EngineParameters/>
  </Product>
  <Product type="EquityPosition">
    <Model>DiscountedCashflows</Model>
    <ModelParameters/>
    <Engine>DiscountingEquityPositionEngine</Engine>
    <EngineParameters/>
  </Product>
</PricingEngines>
"""


def marketdata_txt(market: Market) -> str:
    d = ASOF.strftime("%Y%m%d")
    lines = [f"{d} ZERO/RATE/{CCY}/{DISCOUNT_CURVE}/A365/{t} {market.rate!r}" for t in TENORS]
    for u in market.underlyings:
        lines.append(f"{d} EQUITY/PRICE/{u.symbol}/{CCY} {u.spot!r}")
        lines += [
            f"{d} EQUITY_DIVIDEND/RATE/{u.symbol}/{CCY}/{t} {u.dividend_yield!r}" for t in TENORS
        ]
        lines.append(f"{d} EQUITY_OPTION/RATE_LNVOL/{u.symbol}/{CCY}/1Y/ATMF {u.volatility!r}")
    return "\n".join(lines) + "\n"


def simulation_xml(market: Market) -> str:
    names = "".join(f"<Name>{u.symbol}</Name>" for u in market.underlyings)
    return f"""<Simulation>
  <Market>
    <BaseCurrency>{CCY}</BaseCurrency>
    <Currencies><Currency>{CCY}</Currency></Currencies>
    <YieldCurves>
      <Configuration>
        <Tenors>{",".join(TENORS)}</Tenors>
        <Interpolation>LogLinear</Interpolation>
        <Extrapolation>Y</Extrapolation>
      </Configuration>
    </YieldCurves>
    <Indices/>
    <Equities>
      <Names>{names}</Names>
      <DividendTenors>{",".join(TENORS)}</DividendTenors>
    </Equities>
    <EquityVolatilities>
      <Simulate>false</Simulate>
      <ReactionToTimeDecay>ForwardVariance</ReactionToTimeDecay>
      <Names>{names}</Names>
      <Expiries>{",".join(TENORS)}</Expiries>
    </EquityVolatilities>
  </Market>
</Simulation>
"""


def sensitivity_xml(market: Market) -> str:
    spots = "".join(
        f"""
    <EquitySpot equity="{u.symbol}">
      <ShiftType>Relative</ShiftType>
      <ShiftSize>{SPOT_SHIFT!r}</ShiftSize>
      <ShiftScheme>Central</ShiftScheme>
    </EquitySpot>"""
        for u in market.underlyings
    )
    return f"""<SensitivityAnalysis>
  <EquitySpots>{spots}
  </EquitySpots>
  <ComputeGamma>true</ComputeGamma>
  <UseSpreadedTermStructures>false</UseSpreadedTermStructures>
</SensitivityAnalysis>
"""


def ore_xml(analytics: str, root: Path, out: Path) -> str:
    return f"""<?xml version="1.0"?>
<ORE>
  <Setup>
    <Parameter name="asofDate">{ASOF.isoformat()}</Parameter>
    <Parameter name="baseCurrency">{CCY}</Parameter>
    <Parameter name="inputPath">{root}</Parameter>
    <Parameter name="outputPath">{out}</Parameter>
    <Parameter name="logFile">log.txt</Parameter>
    <Parameter name="logMask">7</Parameter>
    <Parameter name="marketDataFile">market.txt</Parameter>
    <Parameter name="fixingDataFile">fixings.txt</Parameter>
    <Parameter name="implyTodaysFixings">N</Parameter>
    <Parameter name="curveConfigFile">curveconfig.xml</Parameter>
    <Parameter name="conventionsFile">conventions.xml</Parameter>
    <Parameter name="marketConfigFile">todaysmarket.xml</Parameter>
    <Parameter name="pricingEnginesFile">pricingengine.xml</Parameter>
    <Parameter name="portfolioFile">portfolio.xml</Parameter>
    <Parameter name="observationModel">None</Parameter>
    <Parameter name="continueOnError">false</Parameter>
  </Setup>
  <Markets>
    <Parameter name="pricing">default</Parameter>
    <Parameter name="simulation">default</Parameter>
    <Parameter name="sensitivity">default</Parameter>
  </Markets>
  <Analytics>
{analytics}
  </Analytics>
</ORE>
"""


def write_inputs(root: Path) -> None:
    files = {
        "portfolio.xml": portfolio_xml(POSITIONS),
        "conventions.xml": CONVENTIONS_XML,
        "curveconfig.xml": curveconfig_xml(MARKET),
        "todaysmarket.xml": todaysmarket_xml(MARKET),
        "pricingengine.xml": PRICINGENGINE_XML,
        "market.txt": marketdata_txt(MARKET),
        "fixings.txt": "",
        "simulation.xml": simulation_xml(MARKET),
        "sensitivity.xml": sensitivity_xml(MARKET),
    }
    for name, text in files.items():
        (root / name).write_text(text)


def run_ore(root: Path, name: str, analytics: str, expect: str) -> tuple[Path, float]:
    """Run ORE on an ore.xml holding ``analytics``; returns (output dir, wall seconds from
    reading the ore.xml to the end of ``OREApp.run``, reports written). ORE logs most
    failures instead of raising: an ALERT in its log or a missing ``expect`` output file
    raises RuntimeError with the ALERT lines."""
    import ORE

    out = root / f"out_{name}"
    out.mkdir()
    xml = root / f"ore_{name}.xml"
    xml.write_text(ore_xml(analytics, root, out))
    t0 = time.perf_counter()
    params = ORE.Parameters()
    params.fromFile(str(xml))
    app = ORE.OREApp(params, False)
    app.run()
    seconds = time.perf_counter() - t0
    errors = list(app.getErrors())
    log = out / "log.txt"
    alerts = [ln for ln in log.read_text().splitlines() if "ALERT" in ln] if log.exists() else []
    if errors or alerts or not (out / expect).exists():
        raise RuntimeError(f"ORE run {name!r} failed: {errors + alerts}")
    return out, seconds


def read_csv(path: Path) -> list[dict[str, str]]:
    """An ORE CSV report (header line starting with '#') as a list of dicts."""
    with path.open(newline="") as f:
        lines = [line for line in f if line.strip()]
    header = lines[0].lstrip("#").strip().split(",")
    return [dict(zip(header, row, strict=True)) for row in csv.reader(lines[1:])]


def analytic(kind: str, **params: str) -> str:
    body = "".join(
        f'\n      <Parameter name="{k}">{v}</Parameter>'
        for k, v in {"active": "Y", **params}.items()
    )
    return f'    <Analytic type="{kind}">{body}\n    </Analytic>'


def spot_key(symbol: str) -> str:
    return f"EquitySpot/{symbol}/0/spot"


def covariance_csv(market: Market, annual_cov: np.ndarray, horizon_years: float) -> str:
    """ORE's covariance of the risk-factor moves in units of their sensitivity shifts:
    ``x_i = (dS_i / S_i) / SPOT_SHIFT``, so ``Omega = Sigma h / SPOT_SHIFT^2``."""
    omega = annual_cov * horizon_years / SPOT_SHIFT**2
    syms = [u.symbol for u in market.underlyings]
    # ORE's reader drops the file's first line even though it reads it as header-less (a
    # variance written there is silently lost and its factor's deltas get no variance), so
    # the file starts with a header line.
    return "Factor1,Factor2,Covariance\n" + "".join(
        f"{spot_key(a)},{spot_key(b)},{float(omega[i, j])!r}\n"
        for i, a in enumerate(syms)
        for j, b in enumerate(syms)
    )


def synthetic_history(market: Market, days: int, seed: int) -> tuple[list[dt.date], np.ndarray]:
    """``days`` weekdays ending the day before ASOF and ``days - 1`` daily log-returns between
    them: Student-t (4 degrees of freedom, scaled to unit variance) with the market's
    correlation and daily volatilities sigma / sqrt(252): fat-tailed, so the historical VaR
    is not a normal one."""
    dates: list[dt.date] = []
    d = ASOF
    while len(dates) < days:
        d -= dt.timedelta(days=1)
        if d.weekday() < 5:
            dates.append(d)
    dates.reverse()
    rng = np.random.default_rng(seed)
    n = len(market.underlyings)
    corr = np.asarray(market.correlation, dtype=np.float64)
    z = rng.standard_normal((days - 1, n)) @ np.linalg.cholesky(corr).T
    nu = 4.0
    chi = rng.chisquare(nu, size=(days - 1, 1))
    t = z * np.sqrt((nu - 2.0) / chi)
    vol = np.array([u.volatility for u in market.underlyings]) / math.sqrt(252.0)
    return dates, t * vol


def scenarios_csv(market: Market, dates: list[dt.date], returns: np.ndarray) -> str:
    """ORE's historical scenario file: every key of the sensitivity market's base scenario
    per date. Spot levels follow the returns (ORE's default EquitySpot return type is
    relative, ``S2 / S1 - 1``, so the scenario spot is ``S exp(r)``: our model); discount
    factors are constant, so their log returns are 0."""
    syms = [u.symbol for u in market.underlyings]
    spot = np.array([u.spot for u in market.underlyings])
    levels = spot * np.exp(np.vstack([np.zeros(len(syms)), np.cumsum(returns, axis=0)]))
    keys = [f"DiscountCurve/{CCY}/{i}" for i in range(len(TENORS))] + [
        f"EquitySpot/{s}/0" for s in syms
    ]
    lines = ["Date,Scenario,Numeraire," + ",".join(keys)]
    for d, row in zip(dates, levels, strict=True):
        vals = ["1.0"] * len(TENORS) + [repr(float(x)) for x in row]
        lines.append(f"{d.isoformat()},1,1.0," + ",".join(vals))
    return "\n".join(lines) + "\n"


def timing(ore_s: float, ours_s: float) -> str:
    return f"{ore_s * 1e3:.1f} ms / {ours_s * 1e3:.2f} ms = {ore_s / ours_s:.0f}x"


def rel(a: float, b: float) -> float:
    return abs(a - b) / max(abs(a), abs(b), 1e-300)


def main() -> int:
    ap = argparse.ArgumentParser(description=(__doc__ or "").split("\n", 1)[0])
    ap.add_argument("--keep", type=Path, help="write ORE's inputs and outputs here and keep them")
    ap.add_argument("--days", type=int, default=501, help="days of synthetic history")
    ap.add_argument("--seed", type=int, default=20261205)
    args = ap.parse_args()
    import ORE

    h = HORIZON_DAYS / 252.0
    pct = f"{1.0 - CONFIDENCE:.2f},{CONFIDENCE:.2f}"
    with tempfile.TemporaryDirectory(prefix="ore_peer_") as tmp:
        root = (args.keep or Path(tmp)).resolve()
        root.mkdir(parents=True, exist_ok=True)
        write_inputs(root)
        # ---- ours
        t0 = time.perf_counter()
        book = book_arrays(POSITIONS, MARKET)
        ours_npv = revalue(book)
        t_ours_npv = time.perf_counter() - t0
        cov = np.asarray(MARKET.correlation) * np.outer(book.volatility, book.volatility)
        (root / "covariance.csv").write_text(covariance_csv(MARKET, cov, h))
        dates, all_returns = synthetic_history(MARKET, args.days + 1, args.seed)
        (root / "scenarios.csv").write_text(scenarios_csv(MARKET, dates, all_returns))
        # ORE's scenario loader does not cover the first date of its period, so the file
        # holds one date before the period; the returns compared are those inside it.
        returns = all_returns[1:]
        t0 = time.perf_counter()
        ours_dn = parametric_var(
            book, confidence=CONFIDENCE, horizon_days=HORIZON_DAYS, covariance=cov
        )
        t_ours_dn = time.perf_counter() - t0
        t0 = time.perf_counter()
        ours_cf = cornish_fisher_var(
            book, confidence=CONFIDENCE, horizon_days=HORIZON_DAYS, covariance=cov
        )
        t_ours_cf = time.perf_counter() - t0
        t0 = time.perf_counter()
        ours_hs = historical_var(book, returns, confidence=CONFIDENCE, horizon_days=HORIZON_DAYS)
        t_ours_hs = time.perf_counter() - t0
        sens = sensitivities(book)
        drift = sens.theta * h
        # ORE's historical model: same spot scenarios, no time passing.
        now = float(ours_npv.sum())
        hs0_losses = now - revalue(book, spot=book.spot * np.exp(returns)).sum(axis=-1)
        # ---- ORE
        out_s, t_sens = run_ore(
            root,
            "sensi",
            analytic("npv", baseCurrency=CCY, outputFileName="npv.csv")
            + "\n"
            + analytic(
                "sensitivity",
                baseCurrency=CCY,
                marketConfigFile="simulation.xml",
                sensitivityConfigFile="sensitivity.xml",
                pricingEnginesFile="pricingengine.xml",
                sensitivityOutputFile="sensitivity.csv",
                outputSensitivityThreshold="0",
                outputPrecision="12",
            ),
            expect="sensitivity.csv",
        )
        ore_npv = {r["TradeId"]: float(r["NPV(Base)"]) for r in read_csv(out_s / "npv.csv")}
        ore_sens = read_csv(out_s / "sensitivity.csv")
        ore_var: dict[str, tuple[dict[str, str], float]] = {}
        for method in ("Delta", "Cornish-Fisher"):
            name = "pvar_" + method.lower().replace("-", "")
            out_v, t_v = run_ore(
                root,
                name,
                analytic(
                    "parametricVar",
                    baseCurrency=CCY,
                    sensitivityInputFile="out_sensi/sensitivity.csv",
                    covarianceInputFile="covariance.csv",
                    quantiles=pct,
                    breakdown="N",
                    method=method,
                    outputFile="var.csv",
                ),
                expect="var.csv",
            )
            ore_var[method] = (read_csv(out_v / "var.csv")[0], t_v)
        out_h, t_hs = run_ore(
            root,
            "histsim",
            analytic(
                "historicalSimulationVar",
                baseCurrency=CCY,
                historicalScenarioFile="scenarios.csv",
                simulationConfigFile="simulation.xml",
                historicalPeriod=f"{dates[1].isoformat()},{dates[-1].isoformat()}",
                mporDays="1",
                mporCalendar="WeekendsOnly",
                mporOverlappingPeriods="false",
                quantiles=pct,
                includeExpectedShortfall="Y",
                tradePnl="N",
                outputFile="var.csv",
            ),
            expect="var.csv",
        )
        ore_hs = next(r for r in read_csv(out_h / "var.csv") if r["RiskType"] == "All")

    lo = f"{1.0 - CONFIDENCE:.6f}"
    rows: list[tuple[str, float, float, str, str]] = []
    npv_bad = []
    sens_npv = {r["TradeId"]: float(r["Base NPV"]) for r in ore_sens if not r["Factor_2"]}
    for i, p in enumerate(POSITIONS):
        tid = _trade_id(i, p)
        a, b = ore_npv[tid], float(ours_npv[i])
        # npv.csv has 6 decimals; the sensitivity report's base NPV has 12.
        if abs(a - b) > max(NPV_RTOL * abs(b), 5e-7) or rel(sens_npv[tid], b) > NPV_RTOL:
            npv_bad.append(tid)
        rows.append((f"NPV {tid}", a, b, f"{rel(sens_npv[tid], b):.1e}", ""))
    rows.append(
        (
            "NPV book",
            sum(ore_npv.values()),
            float(ours_npv.sum()),
            f"{rel(sum(sens_npv.values()), float(ours_npv.sum())):.1e}",
            timing(t_sens, t_ours_npv),
        )
    )
    for j, sym in enumerate(book.symbols):
        dsum = sum(float(r["Delta"]) for r in ore_sens if r["Factor_1"] == spot_key(sym))
        gsum = sum(float(r["Gamma"]) for r in ore_sens if r["Factor_1"] == spot_key(sym))
        rows.append((f"dollar delta {sym}", dsum / SPOT_SHIFT, float(sens.dollar_delta[j]), "", ""))
        rows.append(
            (f"dollar gamma {sym}", gsum / SPOT_SHIFT**2, float(sens.dollar_gamma[j]), "", "")
        )
    # ORE's Greeks are central differences of full revaluations; the same differences of our
    # kernels separate the finite-difference error from any model difference.
    fd_gap = 0.0
    for j, sym in enumerate(book.symbols):
        up, dn = book.spot.copy(), book.spot.copy()
        up[j] *= 1.0 + SPOT_SHIFT
        dn[j] *= 1.0 - SPOT_SHIFT
        v_up, v_dn = float(revalue(book, spot=up).sum()), float(revalue(book, spot=dn).sum())
        fd_delta = (v_up - v_dn) / (2.0 * SPOT_SHIFT)
        fd_gamma = (v_up - 2.0 * now + v_dn) / SPOT_SHIFT**2
        dsum = sum(float(r["Delta"]) for r in ore_sens if r["Factor_1"] == spot_key(sym))
        gsum = sum(float(r["Gamma"]) for r in ore_sens if r["Factor_1"] == spot_key(sym))
        fd_gap = max(fd_gap, rel(dsum / SPOT_SHIFT, fd_delta), rel(gsum / SPOT_SHIFT**2, fd_gamma))
    dn_row, t_dn = ore_var["Delta"]
    cf_row, t_cf = ore_var["Cornish-Fisher"]
    rows.append(
        (
            "VaR 99% delta-normal (no theta)",
            -float(dn_row[f"Quantile_{lo}"]),
            ours_dn.var + drift,
            "",
            timing(t_sens + t_dn, t_ours_dn),
        )
    )
    rows.append(
        (
            "VaR 99% Cornish-Fisher (no theta)",
            -float(cf_row[f"Quantile_{lo}"]),
            ours_cf.var + drift,
            "",
            timing(t_sens + t_cf, t_ours_cf),
        )
    )
    hs0_var, hs0_es, _, _ = var_es(hs0_losses, CONFIDENCE)
    rows.append(
        (
            f"VaR 99% historical, {len(returns)} days (no time decay)",
            -float(ore_hs[f"Quantile_{lo}"]),
            hs0_var,
            "",
            timing(t_hs, t_ours_hs),
        )
    )
    rows.append(
        (
            "ES 99% historical (no time decay)",
            -float(ore_hs[f"ExpectedShortfall_{lo}"]),
            hs0_es,
            "",
            "",
        )
    )
    print(f"ORE {ORE.__version__} (PyPI open-source-risk-engine) vs tradecore.risk")
    print(
        f"as of {ASOF}, {len(POSITIONS)} positions on {len(MARKET.underlyings)} underlyings, "
        f"{CONFIDENCE:.0%}, {HORIZON_DAYS:g}-day horizon, relative spot shift {SPOT_SHIFT:g}"
    )
    print()
    print("| figure | ORE | ours | rel. diff | whole-run time ORE / ours = ratio |")
    print("|---|---|---|---|---|")
    for name, a, b, extra, t in rows:
        d = extra or f"{rel(a, b):.1e}"
        print(f"| {name} | {a:,.6f} | {b:,.6f} | {d} | {t} |")
    print()
    print(
        f"ours as reported (with theta drift {drift:+.4f} over the horizon): delta-normal "
        f"{ours_dn.var:.6f}, Cornish-Fisher {ours_cf.var:.6f}; historical_var (1 day of "
        f"time decay) VaR {ours_hs.var:.6f}, ES {ours_hs.expected_shortfall:.6f}"
    )
    print(
        "NPV rows: ORE column from npv.csv (6 decimals); rel. diff against the 12-digit base NPV "
        "of ORE's sensitivity report. VaR times: ORE's include its sensitivity run (npv + "
        "sensitivity), ours compute their own Greeks."
    )
    print(
        f"ORE's dollar delta/gamma against the same central differences of our kernels: "
        f"max rel. diff {fd_gap:.1e} (the gaps above are the differences' truncation error)"
    )
    ore_total = t_sens + t_dn + t_cf + t_hs
    ours_total = t_ours_npv + t_ours_dn + t_ours_cf + t_ours_hs
    print(
        f"whole-run wall time, all figures: ORE {ore_total:.3f} s (4 OREApp runs), ours "
        f"{ours_total * 1e3:.2f} ms: ratio {ore_total / ours_total:.0f}x"
    )
    if npv_bad:
        print(f"NPV disagreement beyond {NPV_RTOL:g} relative: {npv_bad}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
