"""BSM European kernel: identities, finite differences, high-precision and QuantLib references."""

from __future__ import annotations

import math
import re

import mpmath as mp
import numpy as np
import pytest
import tradecore
from tradecore import pricing

mp.mp.dps = 40


def mp_price(S: float, K: float, T: float, r: float, q: float, v: float, w: int) -> float:
    S_, K_, T_, r_, q_, v_ = (mp.mpf(x) for x in (S, K, T, r, q, v))
    d1 = (mp.log(S_ / K_) + (r_ - q_ + v_**2 / 2) * T_) / (v_ * mp.sqrt(T_))
    d2 = d1 - v_ * mp.sqrt(T_)
    N = lambda x: mp.ncdf(x)  # noqa: E731
    if w == 1:
        return float(S_ * mp.e ** (-q_ * T_) * N(d1) - K_ * mp.e ** (-r_ * T_) * N(d2))
    return float(K_ * mp.e ** (-r_ * T_) * N(-d2) - S_ * mp.e ** (-q_ * T_) * N(-d1))


def mp_greeks(
    S: float, K: float, T: float, r: float, q: float, v: float, w: int
) -> dict[str, float]:
    """Closed-form Greeks evaluated in 40-digit arithmetic."""
    S_, K_, T_, r_, q_, v_ = (mp.mpf(x) for x in (S, K, T, r, q, v))
    sT = mp.sqrt(T_)
    d1 = (mp.log(S_ / K_) + (r_ - q_ + v_**2 / 2) * T_) / (v_ * sT)
    d2 = d1 - v_ * sT
    dq, dr = mp.e ** (-q_ * T_), mp.e ** (-r_ * T_)
    n1 = mp.npdf(d1)
    Nw1, Nw2 = mp.ncdf(w * d1), mp.ncdf(w * d2)
    return {
        "price": float(w * (S_ * dq * Nw1 - K_ * dr * Nw2)),
        "delta": float(w * dq * Nw1),
        "gamma": float(dq * n1 / (S_ * v_ * sT)),
        "vega": float(S_ * dq * n1 * sT),
        "theta": float(
            -S_ * dq * n1 * v_ / (2 * sT) - w * r_ * K_ * dr * Nw2 + w * q_ * S_ * dq * Nw1
        ),
        "rho": float(w * K_ * T_ * dr * Nw2),
        "phi": float(-w * S_ * T_ * dq * Nw1),
    }


def random_set(n: int, seed: int = 7) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {
        "S": rng.uniform(50, 150, n),
        "K": rng.uniform(60, 140, n),
        "T": rng.uniform(1 / 365, 5, n),
        "r": rng.uniform(-0.02, 0.08, n),
        "q": rng.uniform(0.0, 0.06, n),
        "sigma": rng.uniform(0.08, 0.9, n),
        "w": np.where(rng.random(n) < 0.5, 1, -1).astype(np.int8),
    }


def test_single_value_against_hull() -> None:
    # Hull, Options Futures and Other Derivatives, Example 15.6: S=42, K=40, r=10%, sigma=20%,
    # T=0.5 -> call 4.76, put 0.81.
    call = pricing.european(42, 40, 0.5, 0.10, 0.0, 0.20, "call")["price"]
    put = pricing.european(42, 40, 0.5, 0.10, 0.0, 0.20, "put")["price"]
    assert float(call) == pytest.approx(4.7594, abs=5e-5)
    assert float(put) == pytest.approx(0.8086, abs=5e-5)


def test_matches_high_precision_closed_form() -> None:
    d = random_set(300)
    out = pricing.european(d["S"], d["K"], d["T"], d["r"], d["q"], d["sigma"], d["w"])
    worst = 0.0
    for i in range(300):
        ref = mp_greeks(
            *(float(d[k][i]) for k in ("S", "K", "T", "r", "q", "sigma")), int(d["w"][i])
        )
        for name, value in ref.items():
            got = float(out[name][i])
            scale = max(abs(value), 1e-8 * float(d["S"][i]))
            worst = max(worst, abs(got - value) / scale)
    assert worst < 1e-11, worst


def test_put_call_parity() -> None:
    d = random_set(2000, seed=3)
    args = (d["S"], d["K"], d["T"], d["r"], d["q"], d["sigma"])
    c = pricing.european(*args, "call")
    p = pricing.european(*args, "put")
    fwd = d["S"] * np.exp(-d["q"] * d["T"]) - d["K"] * np.exp(-d["r"] * d["T"])
    np.testing.assert_allclose(c["price"] - p["price"], fwd, rtol=1e-12, atol=1e-11)
    np.testing.assert_allclose(c["delta"] - p["delta"], np.exp(-d["q"] * d["T"]), rtol=1e-13)
    np.testing.assert_allclose(c["gamma"], p["gamma"], rtol=1e-13)
    np.testing.assert_allclose(c["vega"], p["vega"], rtol=1e-13)


@pytest.mark.parametrize(
    "greek,arg,sign",
    [
        ("delta", "S", 1),
        ("vega", "sigma", 1),
        ("theta", "T", -1),
        ("rho", "r", 1),
        ("phi", "q", 1),
    ],
)
def test_greeks_against_finite_differences(greek: str, arg: str, sign: int) -> None:
    d = random_set(200, seed=11)
    base = {k: d[k] for k in ("S", "K", "T", "r", "q", "sigma")}
    h = 1e-5 * (np.abs(base[arg]) + 1.0)
    up = dict(base, **{arg: base[arg] + h})
    dn = dict(base, **{arg: base[arg] - h})
    fd = (
        pricing.european(**up, option_type=d["w"], greeks="none")["price"]
        - pricing.european(**dn, option_type=d["w"], greeks="none")["price"]
    ) / (2 * h)
    got = pricing.european(**base, option_type=d["w"])[greek]
    np.testing.assert_allclose(got, sign * fd, rtol=2e-5, atol=2e-6)


def test_gamma_against_finite_difference_of_delta() -> None:
    d = random_set(200, seed=5)
    h = 1e-4 * d["S"]
    args = (d["K"], d["T"], d["r"], d["q"], d["sigma"], d["w"])
    up = pricing.european(d["S"] + h, *args)["delta"]
    dn = pricing.european(d["S"] - h, *args)["delta"]
    np.testing.assert_allclose(
        pricing.european(d["S"], *args)["gamma"], (up - dn) / (2 * h), rtol=1e-5, atol=1e-9
    )


def test_against_quantlib_random_set() -> None:
    ql = pytest.importorskip("QuantLib")
    d = random_set(150, seed=21)
    out = pricing.european(d["S"], d["K"], d["T"], d["r"], d["q"], d["sigma"], d["w"])
    for i in range(150):
        S, K, T, r, q, v = (float(d[k][i]) for k in ("S", "K", "T", "r", "q", "sigma"))
        kind = ql.Option.Call if d["w"][i] == 1 else ql.Option.Put
        calc = ql.BlackCalculator(
            ql.PlainVanillaPayoff(kind, K),
            S * math.exp((r - q) * T),
            v * math.sqrt(T),
            math.exp(-r * T),
        )
        assert float(out["price"][i]) == pytest.approx(calc.value(), rel=1e-9, abs=1e-10)
        assert float(out["delta"][i]) == pytest.approx(calc.delta(S), rel=1e-9, abs=1e-10)
        assert float(out["gamma"][i]) == pytest.approx(calc.gamma(S), rel=1e-9, abs=1e-12)
        assert float(out["vega"][i]) == pytest.approx(calc.vega(T), rel=1e-9, abs=1e-10)
        assert float(out["rho"][i]) == pytest.approx(calc.rho(T), rel=1e-9, abs=1e-10)
        assert float(out["phi"][i]) == pytest.approx(calc.dividendRho(T), rel=1e-9, abs=1e-10)


@pytest.mark.parametrize(
    "S,K,T,r,q,v,w",
    [
        (100, 100, 1 / 365, 0.05, 0.0, 0.2, 1),  # one day
        (100, 100, 30.0, 0.03, 0.01, 0.25, -1),  # thirty years
        (100, 300, 0.25, 0.02, 0.0, 0.2, 1),  # far out of the money call
        (100, 30, 0.25, 0.02, 0.0, 0.2, -1),  # far out of the money put
        (100, 95, 2.0, -0.01, 0.0, 0.3, 1),  # negative rate
        (100, 105, 1.5, 0.01, 0.06, 0.35, -1),  # q > r
        (100, 105, 1.5, -0.005, 0.02, 0.35, 1),  # negative rate and q > r
    ],
)
def test_extreme_inputs_against_high_precision(S, K, T, r, q, v, w) -> None:  # type: ignore[no-untyped-def]
    out = pricing.european(S, K, T, r, q, v, w)
    ref = mp_greeks(S, K, T, r, q, v, w)
    for name, value in ref.items():
        got = float(out[name])
        # Deep OTM prices carry the cancellation error of the closed form; relative to S.
        assert abs(got - value) <= 1e-10 * max(abs(value), 1e-4 * S), (name, got, value)


def test_expiry_zero_is_intrinsic() -> None:
    out = pricing.european([90, 100, 110], 100, 0.0, 0.05, 0.0, 0.2, "call")
    np.testing.assert_array_equal(out["price"], [0.0, 0.0, 10.0])
    np.testing.assert_array_equal(out["delta"], [0.0, 0.5, 1.0])
    np.testing.assert_array_equal(out["gamma"], [0.0, 0.0, 0.0])


def test_broadcasting_and_shapes() -> None:
    K = np.linspace(80, 120, 12).reshape(3, 4)
    out = pricing.european(100.0, K, 1.0, 0.01, 0.0, 0.2, "put")
    assert out["price"].shape == (3, 4)
    flat = pricing.european(np.full(12, 100.0), K.ravel(), 1.0, 0.01, 0.0, 0.2, "put")
    np.testing.assert_array_equal(out["price"].ravel(), flat["price"])
    types = np.array(["call", "PUT", "c", "p"])
    mixed = pricing.european(100.0, 100.0, 1.0, 0.0, 0.0, 0.2, types)["price"]
    assert mixed[0] == mixed[2] and mixed[1] == mixed[3]


def test_large_batch_threads_agree() -> None:
    d = random_set(100_000, seed=9)
    args = (d["S"], d["K"], d["T"], d["r"], d["q"], d["sigma"], d["w"])
    one = pricing.european(*args, threads=1)
    many = pricing.european(*args, threads=2)
    for k in pricing.EUROPEAN_OUTPUTS:
        np.testing.assert_array_equal(one[k], many[k])


def test_streamed_large_batches_equal_small_batches() -> None:
    # Batches of >= 256k rows compute the first-order columns into chunk-local buffers and write
    # them with streaming stores (output start not 64-byte aligned here: the head is copied row
    # by row); smaller batches write in place. Sliced at chunk boundaries (1024 rows), so every
    # row sits at the same place in its chunk, the same rows must come out bit-identical.
    n = 300 * 1024
    d = random_set(n, seed=12)
    args = (d["S"], d["K"], d["T"], d["r"], d["q"], d["sigma"], d["w"])
    for greeks in ("first", "all"):
        names = ["price", *(pricing.FIRST_ORDER_GREEKS if greeks == "first" else [])]
        out = {k: np.empty(n + 1)[1:] for k in names}  # 8 bytes past a 64-byte boundary
        assert all(a.flags.c_contiguous and a.ctypes.data % 64 != 0 for a in out.values())
        whole = pricing.european(*args, greeks=greeks, out=out)
        for lo in range(0, n, 50 * 1024):
            part = pricing.european(*(a[lo : lo + 50 * 1024] for a in args), greeks=greeks)
            for k in whole:
                np.testing.assert_array_equal(
                    whole[k][lo : lo + 50 * 1024], part[k], err_msg=f"{greeks} {k}"
                )


def test_out_buffers_are_written_in_place() -> None:
    d = random_set(50_000, seed=4)
    out = {k: np.empty(50_000) for k in pricing.EUROPEAN_OUTPUTS}
    res = pricing.european(d["S"], d["K"], d["T"], d["r"], d["q"], d["sigma"], d["w"], out=out)
    assert (
        res["price"].base is out["price"]
        or res["price"] is out["price"]
        or np.shares_memory(res["price"], out["price"])
    )
    fresh = pricing.european(d["S"], d["K"], d["T"], d["r"], d["q"], d["sigma"], d["w"])
    np.testing.assert_array_equal(out["vega"], fresh["vega"])
    with pytest.raises(ValueError, match="out\\['price'\\]"):
        pricing.european(
            d["S"], d["K"], d["T"], d["r"], d["q"], d["sigma"], d["w"], out={"price": np.empty(10)}
        )


@pytest.mark.parametrize(
    "kwargs,name",
    [
        ({"sigma": -0.2}, "sigma"),
        ({"sigma": 0.0}, "sigma"),
        ({"S": 0.0}, "S"),
        ({"K": -1.0}, "K"),
        ({"T": -0.1}, "T"),
        ({"S": float("nan")}, "S"),
        ({"r": float("inf")}, "r"),
        ({"q": float("nan")}, "q"),
    ],
)
def test_invalid_inputs_name_the_argument(kwargs: dict[str, float], name: str) -> None:
    args = {"S": 100.0, "K": 100.0, "T": 1.0, "r": 0.01, "q": 0.0, "sigma": 0.2}
    args.update(kwargs)
    with pytest.raises(ValueError, match=rf"^{name}\[0\]"):
        pricing.european(**args, option_type="call")


def test_invalid_row_is_located() -> None:
    sigma = np.full(100_000, 0.2)
    sigma[77_777] = -1.0
    with pytest.raises(ValueError, match=r"sigma\[77777\]"):
        pricing.european(100.0, 100.0, 1.0, 0.0, 0.0, sigma, "call")


def test_mismatched_lengths_and_bad_types() -> None:
    with pytest.raises(ValueError, match="broadcast"):
        pricing.european([100, 101], [100, 101, 102], 1.0, 0.0, 0.0, 0.2, "call")
    with pytest.raises(ValueError, match="option_type"):
        pricing.european(100, 100, 1.0, 0.0, 0.0, 0.2, "straddle")
    with pytest.raises(ValueError, match="option_type"):
        pricing.european(100, 100, 1.0, 0.0, 0.0, 0.2, 2)
    with pytest.raises(ValueError, match="S must be numeric"):
        pricing.european("abc", 100, 1.0, 0.0, 0.0, 0.2, "call")
    with pytest.raises(ValueError, match="greeks"):
        pricing.european(100, 100, 1.0, 0.0, 0.0, 0.2, "call", greeks=["delta", "charm?"])


def test_cuda_reports_truthfully() -> None:
    assert isinstance(tradecore.cuda_available(), bool)
    assert tradecore.cuda_info()
    if not tradecore.cuda_available():
        with pytest.raises(tradecore.TradecoreError, match="CUDA"):
            pricing.european(100, 100, 1.0, 0.0, 0.0, 0.2, "call", device="cuda")
        # auto falls back to the CPU
        assert (
            float(pricing.european(100, 100, 1.0, 0.0, 0.0, 0.2, "call", device="auto")["price"])
            > 0
        )


@pytest.mark.cuda
def test_cuda_matches_cpu() -> None:
    if not tradecore.cuda_available():
        pytest.skip(f"no usable CUDA device: {tradecore.cuda_info()}")
    d = random_set(100_000, seed=12)
    args = (d["S"], d["K"], d["T"], d["r"], d["q"], d["sigma"], d["w"])
    cpu = pricing.european(*args, device="cpu")
    gpu = pricing.european(*args, device="cuda")
    for k in pricing.EUROPEAN_OUTPUTS:
        np.testing.assert_allclose(gpu[k], cpu[k], rtol=1e-12, atol=1e-14)


# ------------------------------------------------------------------- option-type strings


def _type_forms(w: np.ndarray) -> dict[str, object]:
    """The documented ways to write the option types of the int8 codes ``w``."""
    words = np.where(w > 0, "call", "put")
    letters = np.where(w > 0, "C", "p")
    mixed = np.where(np.arange(w.size) % 3 == 0, np.char.upper(words), words)
    return {
        "<U4": words,
        "<U4 upper/lower mixed": mixed,
        "<U1 letters": letters,
        "<U8 (wider than needed)": words.astype("<U8"),
        "S4 bytes": words.astype("S4"),
        "S8 bytes": np.char.upper(words).astype("S8"),
        "object": words.astype(object),
        "list": words.tolist(),
        "tuple of letters": tuple(letters.tolist()),
        "list of bytes": [x.encode() for x in words.tolist()],
        "strided view": np.repeat(words, 2)[::2],
    }


@pytest.mark.parametrize("form", list(_type_forms(np.array([1], np.int8))))
def test_string_option_types_equal_codes_bit_for_bit(form: str) -> None:
    d = random_set(70_001, seed=11)  # above the parallel threshold of the parser
    types = _type_forms(d["w"])[form]
    args = (d["S"], d["K"], d["T"], d["r"], d["q"], d["sigma"])
    np.testing.assert_array_equal(pricing.option_type_codes(types), d["w"])
    want = pricing.european(*args, d["w"])
    got = pricing.european(*args, types)  # type: ignore[arg-type]
    for k in pricing.EUROPEAN_OUTPUTS:
        np.testing.assert_array_equal(got[k], want[k])


def test_string_option_types_keep_their_shape() -> None:
    types = np.array([["call", "PUT"], ["p", "C"]])
    np.testing.assert_array_equal(pricing.option_type_codes(types), [[1, -1], [-1, 1]])
    np.testing.assert_array_equal(pricing.option_type_codes(types.T), [[1, -1], [-1, 1]])
    assert pricing.option_type_codes("Put").shape == ()


@pytest.mark.parametrize(
    ("types", "row", "shown"),
    [
        (["call", "put", "cal"], 2, "'cal'"),
        (np.array(["call"] * 100_000 + ["puts"] + ["put"] * 10), 100_000, "'puts'"),
        (np.array([b"call", b"straddle"]), 1, "'straddle'"),
        (np.array(["call", "x" * 1000]), 1, "'" + "x" * 16 + "...'"),
        (np.array(["put", None], dtype=object), 1, "None"),
        (["call", 1], 1, "1"),
        (np.array(["call", "", "put"]), 1, "''"),
        (np.array(["ca ll", "put"]), 0, "'ca ll'"),
        (np.array(["call", "puT", "pu"]), 2, "'pu'"),
    ],
)
def test_bad_option_type_names_the_row(types: object, row: int, shown: str) -> None:
    msg = rf"^option_type\[{row}\] must be 'call' or 'put' \(got {re.escape(shown)}\)$"
    with pytest.raises(ValueError, match=msg):
        pricing.option_type_codes(types)  # type: ignore[arg-type]
    n = len(types)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=msg):
        pricing.european(np.full(n, 100.0), 100.0, 1.0, 0.0, 0.0, 0.2, types)  # type: ignore[arg-type]


def test_european_row_equals_a_batch_of_one_bit_for_bit() -> None:
    rng = np.random.default_rng(7)
    for _ in range(500):
        S, K = rng.uniform(1.0, 400.0, 2)
        T = float(rng.choice([0.0, 1e-9, rng.uniform(0.01, 10.0)]))
        r, q = rng.uniform(-0.05, 0.12, 2)
        v = rng.uniform(0.005, 3.0)
        w = 1 if rng.random() < 0.5 else -1
        model = "bsm" if rng.random() < 0.5 else "black76"
        greeks = pricing.ALL_GREEKS if model == "bsm" else pricing.BLACK76_GREEKS
        outputs = ("price", *greeks)
        if model == "black76":
            q = 0.0
        row = pricing.european_row(S, K, T, r, q, v, w, outputs, model)
        batch = pricing.european(S, K, T, r, q, v, w, list(outputs[1:]), model=model)
        assert list(row) == [n for n in pricing.EUROPEAN_OUTPUTS if n in outputs]
        for name in outputs:
            assert np.array_equal(row[name], batch[name], equal_nan=True), name


def test_european_row_selects_outputs_and_names_bad_input() -> None:
    row = pricing.european_row(100.0, 105.0, 0.5, 0.03, 0.01, 0.25, 1, ("vega", "price"))
    assert set(row) == {"price", "vega"}
    with pytest.raises(pricing.InvalidInputError, match=r"sigma\[0\]") as exc:
        pricing.european_row(100.0, 105.0, 0.5, 0.03, 0.01, -0.25, -1)
    assert (exc.value.invalid.field, exc.value.invalid.index) == ("volatility", 0)
    with pytest.raises(ValueError, match="option_type must be"):
        pricing.european_row(100.0, 105.0, 0.5, 0.03, 0.01, 0.25, 2)
    with pytest.raises(ValueError, match="unknown 'nope'"):
        pricing.european_row(100.0, 105.0, 0.5, 0.03, 0.01, 0.25, 1, ("price", "nope"))
