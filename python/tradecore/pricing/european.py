"""European options: Black-Scholes-Merton (continuous dividend yield) and Black-76 (forwards).

All functions are batch first: every argument may be a scalar or an array; arrays broadcast
against each other (numpy rules) and scalars are never copied out to full length. Greeks are raw
partial derivatives per year and per 1.00 of vol/rate:

==============  ====================  ==============  ====================
``delta``       dV/dS                 ``vomma``       d2V/dsigma2
``gamma``       d2V/dS2               ``speed``       d3V/dS3
``vega``        dV/dsigma             ``color``       -d3V/dS2dT
``theta``       -dV/dT                ``zomma``       d3V/dS2dsigma
``rho``         dV/dr                 ``ultima``      d3V/dsigma3
``phi``         dV/dq                 ``veta``        -d2V/dsigmadT
``vanna``       d2V/dSdsigma          ``dual_delta``  dV/dK
``charm``       -d2V/dSdT             ``dual_gamma``  d2V/dK2
``elasticity``  delta S / V
==============  ====================  ==============  ====================

For Black-76 the underlying is the forward F (held fixed when T or r move): ``delta`` is dV/dF,
``rho`` = dV/dr = -T V, and ``phi`` does not exist. Prices and Greeks keep relative accuracy for
deep out-of-the-money options (no cancellation; normal tails to ~1e-300).
"""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
import numpy.typing as npt

from tradecore import _core
from tradecore.errors import quote

ArrayLike = npt.ArrayLike
FloatArray = npt.NDArray[np.float64]
Device = Literal["cpu", "cuda", "auto"]

Model = Literal["bsm", "black76"]

EUROPEAN_OUTPUTS: tuple[str, ...] = (
    "price", "delta", "gamma", "vega", "theta", "rho", "phi", "vanna", "charm", "vomma",
    "speed", "color", "zomma", "ultima", "veta", "dual_delta", "dual_gamma", "elasticity",
)  # fmt: skip
FIRST_ORDER_GREEKS: tuple[str, ...] = EUROPEAN_OUTPUTS[1:7]
ALL_GREEKS: tuple[str, ...] = EUROPEAN_OUTPUTS[1:]
BLACK76_GREEKS: tuple[str, ...] = tuple(g for g in ALL_GREEKS if g != "phi")

# The names of european()'s arguments, keyed by the core's field names.
_ARG_NAMES = {
    "spot": "S",
    "strike": "K",
    "expiry": "T",
    "rate": "r",
    "dividend": "q",
    "volatility": "sigma",
    "option_type": "option_type",
}
# Above this many options, device="auto" uses the GPU when one is present.
GPU_AUTO_THRESHOLD = 200_000


@dataclass(frozen=True, slots=True)
class PricingDomain:
    """The inputs inside which every price and Greek is finite (bounds inclusive; the kernels
    reject anything outside with a ValueError naming the argument and row): spot (forward) in
    [spot_min, spot_max], strike in [strike_min, strike_max], expiry 0 or in
    [expiry_min, expiry_max] years, |rate| and |dividend yield| <= rate_max_abs, volatility in
    [vol_min, vol_max]."""

    spot_min: float
    spot_max: float
    strike_min: float
    strike_max: float
    expiry_min: float
    expiry_max: float
    rate_max_abs: float
    vol_min: float
    vol_max: float

    @property
    def spot_rule(self) -> str:
        return f"in [{self.spot_min:g}, {self.spot_max:g}]"

    @property
    def strike_rule(self) -> str:
        return f"in [{self.strike_min:g}, {self.strike_max:g}]"

    @property
    def expiry_rule(self) -> str:
        """For expiries that must be > 0 (a quote, an implied vol); pricing also takes 0."""
        return f"in [{self.expiry_min:g}, {self.expiry_max:g}] (years)"

    @property
    def rate_rule(self) -> str:
        return f"in [{-self.rate_max_abs:g}, {self.rate_max_abs:g}]"

    @property
    def vol_rule(self) -> str:
        return f"in [{self.vol_min:g}, {self.vol_max:g}]"

    def spot_ok(self, x: npt.ArrayLike) -> npt.NDArray[np.bool_]:
        a = np.asarray(x, dtype=np.float64)
        return np.asarray((a >= self.spot_min) & (a <= self.spot_max))

    def strike_ok(self, x: npt.ArrayLike) -> npt.NDArray[np.bool_]:
        a = np.asarray(x, dtype=np.float64)
        return np.asarray((a >= self.strike_min) & (a <= self.strike_max))

    def expiry_ok(self, t: npt.ArrayLike) -> npt.NDArray[np.bool_]:
        """Expiry in [expiry_min, expiry_max] (0 excluded)."""
        a = np.asarray(t, dtype=np.float64)
        return np.asarray((a >= self.expiry_min) & (a <= self.expiry_max))

    def rate_ok(self, r: npt.ArrayLike) -> npt.NDArray[np.bool_]:
        a = np.asarray(r, dtype=np.float64)
        return np.asarray(np.abs(a) <= self.rate_max_abs)

    def vol_ok(self, v: npt.ArrayLike) -> npt.NDArray[np.bool_]:
        a = np.asarray(v, dtype=np.float64)
        return np.asarray((a >= self.vol_min) & (a <= self.vol_max))


DOMAIN = PricingDomain(**_core.PRICING_DOMAIN)


@dataclass(frozen=True, slots=True)
class InvalidInput:
    """The first invalid input of a batch (see :func:`check_european`)."""

    field: str  # spot, strike, expiry, rate, dividend, volatility, option_type
    index: int  # flat row index
    value: float
    rule: str


class InvalidInputError(ValueError):
    """A ValueError that also carries the structured :class:`InvalidInput`."""

    def __init__(self, message: str, invalid: InvalidInput) -> None:
        super().__init__(message)
        self.invalid = invalid


def option_type_codes(option_type: ArrayLike) -> npt.NDArray[np.int8]:
    """Map ``"call"``/``"put"`` (any case; also ``"c"``/``"p"``) or +1/-1 to int8 codes.

    Strings may be a scalar, a numpy str/bytes/object array of any shape, or a list/tuple; they
    are parsed in the compiled core (numpy string arrays straight from their buffer).
    """
    if (
        isinstance(option_type, list | tuple)
        and option_type
        and isinstance(option_type[0], str | bytes)
    ):
        codes, bad = _core.option_type_codes_list(option_type)
        if bad is not None:
            _bad_option_type(bad, option_type[bad])
        return codes
    arr = np.asarray(option_type)
    if arr.dtype.kind in "iu":
        codes = arr.astype(np.int8, copy=False)
        bad_mask = (codes != 1) & (codes != -1)
        if bad_mask.any():
            idx = int(np.flatnonzero(bad_mask.ravel())[0])
            raise ValueError(f"option_type[{idx}] must be 'call'/'put' or +1/-1")
        return codes
    if arr.dtype.kind not in "USO":
        raise ValueError(f"option_type must be 'call'/'put' or +1/-1, not dtype {arr.dtype}")
    if arr.dtype.kind == "U" and arr.dtype.byteorder == ">":
        arr = arr.astype(arr.dtype.newbyteorder("="))
    flat = arr.reshape(-1)  # a view unless the array is not contiguous
    codes, bad = _core.option_type_codes(flat)
    if bad is not None:
        _bad_option_type(bad, flat[bad])
    return codes.reshape(arr.shape)


def _bad_option_type(row: int, value: object) -> None:
    """Raise the ValueError for a bad option type, quoting at most 16 characters of it."""
    if isinstance(value, bytes | np.bytes_):
        value = value.decode("latin-1")
    text = str(value) if isinstance(value, str | np.str_) else value
    shown = repr(text[:16] + "...") if isinstance(text, str) and len(text) > 16 else repr(text)
    shown = shown if len(shown) <= 40 else shown[:37] + "..."
    raise ValueError(f"option_type[{row}] must be 'call' or 'put' (got {shown})")


def broadcast_batch(
    named: dict[str, ArrayLike], option_type: ArrayLike
) -> tuple[tuple[int, ...], list[npt.NDArray[np.generic]]]:
    """Convert named float inputs and the option type to 1-D views of one broadcast length.

    Returns the broadcast shape and the arrays (float64 in ``named`` order, then int8 type
    codes). 0-d and 1-D inputs keep their (possibly zero) stride; N-D ones are flattened.
    """
    arrays: list[npt.NDArray[np.generic]] = []
    for name, value in named.items():
        try:
            arrays.append(np.asarray(value, dtype=np.float64))
        except (TypeError, ValueError) as exc:
            raise ValueError(f"{name} must be numeric: {exc}") from None
    arrays.append(option_type_codes(option_type))
    try:
        first = arrays[0].shape
        same = all(a.shape == first for a in arrays)
        shape = first if same else np.broadcast_shapes(*(a.shape for a in arrays))
    except ValueError:
        shapes = ", ".join(
            f"{n}{a.shape}" for n, a in zip([*named, "option_type"], arrays, strict=True)
        )
        raise ValueError(f"argument shapes do not broadcast: {shapes}") from None
    flat: list[npt.NDArray[np.generic]] = []
    for a in arrays:
        # (np.broadcast_to costs ~4 us an array: skip it for arrays that already have the shape.)
        b = a if a.shape == shape else np.broadcast_to(a, shape)
        flat.append(b.reshape(-1) if b.ndim != 1 else b)
    return shape, flat


def _prepare(
    S: ArrayLike,
    K: ArrayLike,
    T: ArrayLike,
    r: ArrayLike,
    q: ArrayLike,
    sigma: ArrayLike,
    option_type: ArrayLike,
) -> tuple[tuple[int, ...], list[npt.NDArray[np.generic]]]:
    return broadcast_batch({"S": S, "K": K, "T": T, "r": r, "q": q, "sigma": sigma}, option_type)


def check_european(
    S: ArrayLike,
    K: ArrayLike,
    T: ArrayLike,
    r: ArrayLike,
    q: ArrayLike,
    sigma: ArrayLike,
    option_type: ArrayLike,
) -> InvalidInput | None:
    """Return the first invalid input of a European batch, or ``None`` when all are valid.

    Rules: the :data:`DOMAIN` (spot, strike, expiry, rate, dividend yield and volatility
    inside its bounds; NaN and inf are outside); option type call/put.
    """
    _, flat = _prepare(S, K, T, r, q, sigma, option_type)
    found = _core.european_check(*flat)  # type: ignore[arg-type]
    if found is None:
        return None
    field, row, value, rule = found
    return InvalidInput(field=field, index=int(row), value=float(value), rule=rule)


def _use_gpu(device: Device, n: int) -> bool:
    if device == "cpu":
        return False
    if device == "cuda":
        return True
    if device == "auto":
        return n >= GPU_AUTO_THRESHOLD and bool(_core.cuda_available())
    raise ValueError(f"device must be 'cpu', 'cuda' or 'auto' (got {quote(device)})")


GreeksSpec = Sequence[str] | Literal["all", "first", "none"]


def _wanted_greeks(greeks: GreeksSpec, model: Model) -> list[str]:
    available = ALL_GREEKS if model == "bsm" else BLACK76_GREEKS
    if isinstance(greeks, str):
        if greeks == "all":
            return list(available)
        if greeks == "first":
            return [g for g in FIRST_ORDER_GREEKS if g in available]
        if greeks == "none":
            return []
        raise ValueError(f"greeks must be 'all', 'first', 'none' or a list (got {quote(greeks)})")
    wanted = list(greeks)
    unknown = [g for g in wanted if g not in available]
    if unknown:
        raise ValueError(
            f"greeks: unknown {quote(unknown)} for model {model!r}; choose from {list(available)}"
        )
    return wanted


def european(
    S: ArrayLike,
    K: ArrayLike,
    T: ArrayLike,
    r: ArrayLike,
    q: ArrayLike,
    sigma: ArrayLike,
    option_type: ArrayLike,
    greeks: GreeksSpec = "all",
    *,
    model: Model = "bsm",
    device: Device = "cpu",
    threads: int = 0,
    out: Mapping[str, FloatArray] | None = None,
) -> dict[str, FloatArray]:
    """Price and Greeks of European options (Black-Scholes-Merton or Black-76).

    Args:
        S: spot price; with ``model="black76"`` the forward/futures price.
        K: strike.  T: time to expiry in years.
        r: continuously compounded risk-free rate.
        q: continuous dividend yield (must be 0 with ``model="black76"``).
        sigma: volatility (per 1.00).
            Every input must lie in :data:`DOMAIN` (inside it every output is finite).
        option_type: ``"call"``/``"put"`` or an array of them.
        greeks: ``"all"`` (every Greek through third order, see the module docstring; Black-76
            omits ``phi``), ``"first"`` (delta, gamma, vega, theta, rho, phi: the fast path),
            ``"none"``, or a list of names. The price is always returned.
        model: ``"bsm"`` (spot with dividend yield) or ``"black76"`` (forward).
        device: ``"cpu"``, ``"cuda"`` (raises TradecoreError without a GPU) or ``"auto"``
            (the GPU above ``GPU_AUTO_THRESHOLD`` options when one is present).
        threads: CPU threads (0: all cores).
        out: optional preallocated float64 C-contiguous arrays of the result shape, keyed by
            output name, written in place (reuse them to reprice a book without allocating).

    Returns:
        ``{"price": ..., "<greek>": ...}``: float64 arrays of the broadcast shape of the inputs
        (0-d arrays for all-scalar input).

    Raises:
        ValueError: an invalid input; the message names the argument and the row.
    """
    if model not in ("bsm", "black76"):
        raise ValueError(f"model must be 'bsm' or 'black76' (got {quote(model)})")
    wanted = _wanted_greeks(greeks, model)
    if model == "black76" and np.any(np.asarray(q, dtype=np.float64) != 0.0):
        raise ValueError("q must be 0 with model='black76' (S is the forward)")
    shape, flat = _prepare(S, K, T, r, q, sigma, option_type)
    gpu = _use_gpu(device, flat[0].shape[0])
    flat_out: dict[str, FloatArray] | None = None
    if out is not None:
        flat_out = {}
        for name, arr in out.items():
            if name not in EUROPEAN_OUTPUTS:
                raise ValueError(f"out: unknown output {quote(name)}")
            if not isinstance(arr, np.ndarray) or arr.shape != shape or arr.dtype != np.float64:
                raise ValueError(f"out[{name!r}] must be a float64 array of shape {shape}")
            if not arr.flags.c_contiguous or not arr.flags.writeable:
                raise ValueError(f"out[{name!r}] must be C-contiguous and writable")
            flat_out[name] = arr if arr.ndim == 1 else arr.reshape(-1)
    try:
        # Validation is fused into the kernel's single pass over the inputs.
        s_, k_, t_, r_, q_, v_, w_ = flat
        result = _core.european(
            s_,  # type: ignore[arg-type]
            k_,  # type: ignore[arg-type]
            t_,  # type: ignore[arg-type]
            r_,  # type: ignore[arg-type]
            q_,  # type: ignore[arg-type]
            v_,  # type: ignore[arg-type]
            w_,  # type: ignore[arg-type]
            outputs=["price", *wanted],
            gpu=gpu,
            threads=threads,
            checked=True,
            out=flat_out,
            model=model,
        )
    except ValueError:
        _raise_invalid(flat)
        raise
    return {k: v if v.shape == shape else v.reshape(shape) for k, v in result.items()}


def _raise_invalid(flat: Sequence[npt.NDArray[np.generic]]) -> None:
    """Raise InvalidInputError for the first invalid row (returns if there is none)."""
    found = _core.european_check(*flat)  # type: ignore[arg-type]
    if found is None:
        return
    field, row, value, rule = found
    invalid = InvalidInput(field=field, index=int(row), value=float(value), rule=rule)
    raise InvalidInputError(f"{_ARG_NAMES[field]}[{row}] {rule} (got {value!r})", invalid) from None


def european_arrays(
    spot: FloatArray,
    strike: FloatArray,
    expiry: FloatArray,
    rate: FloatArray,
    dividend: FloatArray,
    vol: FloatArray,
    type_codes: npt.NDArray[np.int8],
    greeks: Sequence[str] = FIRST_ORDER_GREEKS,
) -> dict[str, FloatArray]:
    """Low-overhead form of :func:`european` for callers that already hold 1-D float64 arrays
    of one length and int8 type codes (+1 call, -1 put): no broadcasting, no conversions.

    Raises :class:`InvalidInputError` (a ValueError) whose ``invalid`` names the core field
    (``spot``, ``strike``, ``expiry``, ``rate``, ``dividend``, ``volatility``, ``option_type``).
    """
    unknown = [g for g in greeks if g not in FIRST_ORDER_GREEKS]
    if unknown:
        raise ValueError(
            f"greeks: unknown {quote(unknown)}; choose from {list(FIRST_ORDER_GREEKS)}"
        )
    flat = (spot, strike, expiry, rate, dividend, vol, type_codes)
    try:
        return _core.european(
            spot, strike, expiry, rate, dividend, vol, type_codes, outputs=["price", *greeks]
        )
    except ValueError:
        _raise_invalid(flat)
        raise


@functools.lru_cache(maxsize=256)
def _row_columns(outputs: tuple[str, ...]) -> tuple[int, tuple[str, ...]]:
    """The core's column mask for ``outputs`` and the names of its columns in column order."""
    mask = 0
    for name in outputs:
        if name not in EUROPEAN_OUTPUTS:
            raise ValueError(
                f"outputs: unknown {quote(name)}; choose from {list(EUROPEAN_OUTPUTS)}"
            )
        mask |= 1 << EUROPEAN_OUTPUTS.index(name)
    return mask, tuple(n for i, n in enumerate(EUROPEAN_OUTPUTS) if mask >> i & 1)


def european_row(
    spot: float,
    strike: float,
    expiry: float,
    rate: float,
    dividend: float,
    vol: float,
    type_code: int,
    outputs: Sequence[str] = ("price", *FIRST_ORDER_GREEKS),
    model: Model = "bsm",
) -> dict[str, float]:
    """One European option (``type_code`` +1 call, -1 put): ``{name: value}`` for each of
    ``outputs`` (names of EUROPEAN_OUTPUTS). The same kernel as :func:`european` on a batch of
    one, so the same bits, without numpy arrays in or out (about 0.4 us against 5 us for
    :func:`european_arrays` on one row).

    Raises :class:`InvalidInputError` as :func:`european_arrays` does (row 0)."""
    mask, names = _row_columns(tuple(outputs))
    try:
        values = _core.european_row(
            spot, strike, expiry, rate, dividend, vol, type_code, mask, model
        )
    except ValueError:
        if type_code in (1, -1):
            cols = (spot, strike, expiry, rate, dividend, vol)
            _raise_invalid(
                (*(np.array([v], dtype=np.float64) for v in cols), np.array([type_code], np.int8))
            )
        raise
    return dict(zip(names, values, strict=True))


def black76(
    F: ArrayLike,
    K: ArrayLike,
    T: ArrayLike,
    r: ArrayLike,
    sigma: ArrayLike,
    option_type: ArrayLike,
    greeks: GreeksSpec = "all",
    *,
    device: Device = "cpu",
    threads: int = 0,
    out: Mapping[str, FloatArray] | None = None,
) -> dict[str, FloatArray]:
    """Black-76 price and Greeks of European options on a forward/futures price ``F``.

    The same as ``european(F, K, T, r, 0.0, sigma, option_type, greeks, model="black76")``:
    ``delta`` is dV/dF, ``rho`` = dV/dr = -T V at a fixed forward, and there is no ``phi``.
    """
    return european(
        F, K, T, r, 0.0, sigma, option_type, greeks,
        model="black76", device=device, threads=threads, out=out,
    )  # fmt: skip


__all__ = [
    "ALL_GREEKS",
    "BLACK76_GREEKS",
    "DOMAIN",
    "EUROPEAN_OUTPUTS",
    "FIRST_ORDER_GREEKS",
    "GPU_AUTO_THRESHOLD",
    "InvalidInput",
    "InvalidInputError",
    "PricingDomain",
    "black76",
    "check_european",
    "european",
    "european_arrays",
    "european_row",
    "option_type_codes",
]
