"""Hedge proposals: the book plus the trades, repriced, has the targeted Greeks at ~0."""

from __future__ import annotations

import pytest
from tradecore.risk import (
    Instrument,
    Market,
    Position,
    Underlying,
    book_arrays,
    portfolio_greeks,
    propose_hedge,
)

MARKET = Market(
    rate=0.03,
    underlyings=(
        Underlying("AAPL", 190.0, 0.25, 0.005),
        Underlying("MSFT", 410.0, 0.22),
        Underlying("IBM", 150.0, 0.3),
    ),
)


def _opt(sym: str, otype: str, strike: float, expiry: float, style: str = "european") -> Instrument:
    return Instrument(sym, "option", otype, style, strike, expiry)  # type: ignore[arg-type]


POSITIONS = [
    Position(Instrument("AAPL"), 100),
    Position(_opt("AAPL", "call", 200.0, 0.5), -30),
    Position(_opt("AAPL", "put", 180.0, 0.1), 12),
    Position(_opt("MSFT", "put", 400.0, 0.75, "american"), -20),
    Position(_opt("MSFT", "call", 420.0, 1.5), 5),
]
BOOK = book_arrays(POSITIONS, MARKET)
CANDIDATES = [
    _opt("AAPL", "call", 190.0, 0.25),
    _opt("AAPL", "put", 170.0, 1.0),
    _opt("AAPL", "call", 210.0, 2.0),
    _opt("MSFT", "put", 410.0, 0.25, "american"),
    _opt("MSFT", "call", 410.0, 2.0),
]


def _per_underlying(book_positions: list[Position]) -> dict[str, tuple[float, float, float]]:
    """(delta, gamma, vega) per underlying of the book, recomputed here."""
    g = portfolio_greeks(book_arrays(book_positions, MARKET))
    return {s: (b.delta, b.gamma, b.vega) for s, b in g.by_underlying.items()}


def _scale() -> dict[str, tuple[float, float, float]]:
    return _per_underlying(POSITIONS)


@pytest.mark.parametrize(
    ("targets", "zero"),
    [
        (("delta",), (0,)),
        (("delta", "gamma"), (0, 1)),
        (("delta", "vega"), (0, 2)),
        (("delta", "gamma", "vega"), (0, 1, 2)),
        (("gamma",), (1,)),
    ],
)
def test_after_greeks_are_zero(targets: tuple[str, ...], zero: tuple[int, ...]) -> None:
    prop = propose_hedge(BOOK, CANDIDATES, targets)
    before = _scale()
    after = _per_underlying([*POSITIONS, *prop.trades])
    for sym in ("AAPL", "MSFT"):
        for k in zero:
            assert abs(after[sym][k]) <= 1e-9 * max(abs(before[sym][k]), 1.0), (sym, k)
    for k, name in enumerate(("delta", "gamma", "vega")):
        if k in zero:
            assert abs(getattr(prop.after, name)) <= 1e-8 * max(
                abs(getattr(prop.before, name)), 1.0
            )
    assert prop.before == portfolio_greeks(BOOK).total
    if "delta" not in targets:
        assert all(t.instrument.kind == "option" for t in prop.trades)


def test_delta_hedge_is_minus_delta_in_shares() -> None:
    prop = propose_hedge(BOOK)
    g = portfolio_greeks(BOOK).by_underlying
    assert [(t.instrument.symbol, t.instrument.kind) for t in prop.trades] == [
        ("AAPL", "equity"),
        ("MSFT", "equity"),
    ]
    assert prop.trades[0].quantity == pytest.approx(-g["AAPL"].delta, rel=1e-12)
    assert prop.trades[1].quantity == pytest.approx(-g["MSFT"].delta, rel=1e-12)
    assert prop.after.gamma == pytest.approx(prop.before.gamma, rel=1e-12)


def test_more_candidates_than_targets_is_minimum_norm() -> None:
    # Gamma only on AAPL with three candidates: the trade is the minimum-norm solution, so it
    # is smaller than using any single candidate alone.
    book = book_arrays(POSITIONS[:3], MARKET)
    prop = propose_hedge(book, CANDIDATES[:3], ("gamma",))
    q = [t.quantity for t in prop.trades]
    assert len(q) == 3
    norm = sum(x * x for x in q) ** 0.5
    for c in CANDIDATES[:3]:
        single = propose_hedge(book, [c], ("gamma",)).trades[0].quantity
        assert norm <= abs(single) + 1e-12


def test_no_candidate_to_move_gamma_is_an_error() -> None:
    with pytest.raises(
        ValueError, match=r"^candidates: no option on 'MSFT' to neutralise its gamma"
    ):
        propose_hedge(BOOK, CANDIDATES[:3], ("delta", "gamma"))
    with pytest.raises(ValueError, match=r"^candidates: the options on 'AAPL' cannot neutralise"):
        # One candidate cannot neutralise gamma and vega at once.
        propose_hedge(BOOK, [CANDIDATES[0], *CANDIDATES[3:]], ("gamma", "vega"))


def test_an_already_neutral_underlying_needs_no_option() -> None:
    prop = propose_hedge(
        book_arrays([Position(Instrument("AAPL"), 5)], MARKET), (), ("delta", "gamma")
    )
    assert [(t.instrument.symbol, t.quantity) for t in prop.trades] == [("AAPL", -5.0)]
    assert prop.after.delta == 0.0 and prop.after.value == 0.0


@pytest.mark.parametrize(
    ("candidates", "targets", "field"),
    [
        ([Instrument("AAPL")], ("delta",), r"^candidates\[0\]\.kind: must be 'option'"),
        (
            [_opt("NFLX", "call", 100.0, 0.5)],
            ("delta",),
            r"^candidates\[0\]\.symbol: unknown underlying",
        ),
        (
            [CANDIDATES[0], _opt("AAPL", "call", -5.0, 0.5)],
            ("delta",),
            r"^candidates\[1\]\.strike: must be > 0",
        ),
        (
            [_opt("AAPL", "call", 100.0, 0.0)],
            ("delta",),
            r"^candidates\[0\]\.expiry_years: must be > 0",
        ),
        ((), ("theta",), r"^targets\[0\]: must be one of delta, gamma, vega"),
        ((), (), r"^targets: must not be empty"),
        ((), "delta", r"^targets: expected a list"),
        ("AAPL", ("delta",), r"^candidates: expected a list"),
    ],
)
def test_bad_input_names_the_field(candidates: object, targets: object, field: str) -> None:
    with pytest.raises(ValueError, match=field):
        propose_hedge(BOOK, candidates, targets)  # type: ignore[arg-type]
