from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

__version__: str

class Error(RuntimeError): ...

def cuda_available() -> bool: ...
def cuda_compiled() -> bool: ...
def cuda_describe() -> str: ...

# spot_min/max, strike_min/max, expiry_min/max (expiry is 0 or in the range), rate_max_abs
# (also dividend), vol_min/max
PRICING_DOMAIN: dict[str, float]

def european_check(
    S: npt.NDArray[np.float64],
    K: npt.NDArray[np.float64],
    T: npt.NDArray[np.float64],
    r: npt.NDArray[np.float64],
    q: npt.NDArray[np.float64],
    sigma: npt.NDArray[np.float64],
    option_type: npt.NDArray[np.int8],
) -> tuple[str, int, float, str] | None: ...
def european(
    S: npt.NDArray[np.float64],
    K: npt.NDArray[np.float64],
    T: npt.NDArray[np.float64],
    r: npt.NDArray[np.float64],
    q: npt.NDArray[np.float64],
    sigma: npt.NDArray[np.float64],
    option_type: npt.NDArray[np.int8],
    outputs: Sequence[str],
    gpu: bool = False,
    threads: int = 0,
    checked: bool = True,
    out: Mapping[str, npt.NDArray[np.float64]] | None = None,
    model: str = "bsm",
) -> dict[str, npt.NDArray[np.float64]]: ...
def european_row(
    S: float,
    K: float,
    T: float,
    r: float,
    q: float,
    sigma: float,
    option_type: int,
    columns: int,
    model: str = "bsm",
) -> tuple[float, ...]: ...
def svi_total_variance(
    k: npt.NDArray[np.float64],
    a: float,
    b: float,
    rho: float,
    m: float,
    sigma: float,
    derivatives: int,
    threads: int,
) -> tuple[npt.NDArray[np.float64], ...]: ...
def svi_density(
    k: npt.NDArray[np.float64],
    a: float,
    b: float,
    rho: float,
    m: float,
    sigma: float,
    threads: int,
) -> npt.NDArray[np.float64]: ...
def sabr_vol(
    F: npt.NDArray[np.float64],
    K: npt.NDArray[np.float64],
    T: npt.NDArray[np.float64],
    alpha: float,
    beta: float,
    rho: float,
    nu: float,
    threads: int,
) -> npt.NDArray[np.float64]: ...
def surface_vol(
    model: str,
    expiries: npt.NDArray[np.float64],
    forwards: npt.NDArray[np.float64],
    params: npt.NDArray[np.float64],
    spot: float,
    K: npt.NDArray[np.float64],
    T: npt.NDArray[np.float64],
    threads: int,
) -> npt.NDArray[np.float64]: ...

# ---------------------------------------------------------------- order book (bind_book.cpp)
BOOK_EVENT_DTYPE: np.dtype[np.void]
LOBSTER_EMPTY_ASK: int
LOBSTER_EMPTY_BID: int

def reject_reason_name(reason: int) -> str: ...
def feature_names() -> list[str]: ...

class OrderBook:
    record_events: bool
    def __init__(self, expected_orders: int = 1024) -> None: ...
    def submit(
        self, order_id: int, side: int, order_type: int, price: int, size: int, ts: int
    ) -> None: ...
    def cancel(self, order_id: int, ts: int) -> None: ...
    def reduce(self, order_id: int, by: int, ts: int) -> None: ...
    def replace(self, order_id: int, price: int, size: int, ts: int) -> None: ...
    def insert(self, order_id: int, side: int, price: int, size: int, ts: int) -> bool: ...
    def execute(self, order_id: int, size: int, ts: int) -> int: ...
    def add_level_size(self, side: int, price: int, size: int, ts: int = 0) -> int: ...
    def remove_level_size(self, side: int, price: int, size: int, ts: int = 0) -> int: ...
    def take_events(self) -> npt.NDArray[np.void]: ...
    def best(self, side: int) -> tuple[int, int] | None: ...
    def level_count(self, side: int) -> int: ...
    def level_size(self, side: int, price: int) -> int: ...
    def level_queue(
        self, side: int, price: int
    ) -> tuple[int, npt.NDArray[np.uint64], npt.NDArray[np.int64]]: ...
    def levels(
        self, side: int, depth: int
    ) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64], npt.NDArray[np.uint32]]: ...
    def snapshot_into(
        self,
        bid_price: npt.NDArray[np.int64],
        bid_size: npt.NDArray[np.int64],
        ask_price: npt.NDArray[np.int64],
        ask_size: npt.NDArray[np.int64],
    ) -> tuple[int, int]: ...
    def find(self, order_id: int) -> tuple[int, int, int, int] | None: ...
    def order_count(self) -> int: ...
    def check_invariants(self) -> str: ...
    def clear(self) -> None: ...
    def apply_batch(
        self,
        kind: npt.NDArray[np.uint8],
        order_id: npt.NDArray[np.uint64],
        side: npt.NDArray[np.int8],
        price: npt.NDArray[np.int64],
        size: npt.NDArray[np.int64],
        ts: npt.NDArray[np.int64],
    ) -> None: ...

class SyntheticFlow:
    operations: int
    pressure: float
    def __init__(
        self,
        book: OrderBook,
        seed: int,
        stream: int,
        rate: float,
        start_ns: int,
        mid: int,
        tick: int,
        drift: float,
    ) -> None: ...
    def next(
        self, ops: int
    ) -> tuple[
        npt.NDArray[np.int64],
        npt.NDArray[np.uint8],
        npt.NDArray[np.uint64],
        npt.NDArray[np.int8],
        npt.NDArray[np.int64],
        npt.NDArray[np.int64],
    ]: ...

class FeatureEngine:
    def __init__(
        self,
        depth: int = 5,
        vpin_bucket_volume: int = 1000,
        vpin_buckets: int = 50,
        trade_window: int = 100,
        rv_window: int = 100,
    ) -> None: ...
    def update(self, book: OrderBook) -> None: ...
    def on_book(self, book: OrderBook) -> None: ...
    def on_trade(self, sign: int, size: int) -> None: ...
    def current(self) -> npt.NDArray[np.float64]: ...
    def reset(self) -> None: ...

def lobster_count_fields(data: bytes) -> int: ...
def lobster_parse_messages(data: bytes) -> dict[str, npt.NDArray[Any]]: ...
def lobster_parse_book(data: bytes, levels: int) -> npt.NDArray[np.int64]: ...
def lobster_replay(
    time: npt.NDArray[np.int64],
    type: npt.NDArray[np.int8],
    order_id: npt.NDArray[np.int64],
    size: npt.NDArray[np.int64],
    price: npt.NDArray[np.int64],
    direction: npt.NDArray[np.int8],
    book_rows: npt.NDArray[np.int64],
    levels: int,
    book: OrderBook,
    status: bool = False,
    features: FeatureEngine | None = None,
) -> tuple[dict[str, int | None], npt.NDArray[np.uint8] | None, npt.NDArray[np.float64] | None]: ...

class UnsupportedRegime(Error): ...

def american(
    S: npt.NDArray[np.float64],
    K: npt.NDArray[np.float64],
    T: npt.NDArray[np.float64],
    r: npt.NDArray[np.float64],
    q: npt.NDArray[np.float64],
    sigma: npt.NDArray[np.float64],
    option_type: npt.NDArray[np.int8],
    method: str,
    outputs: Sequence[str],
    steps: int,
    alo_nodes: int,
    alo_quadrature: int,
    alo_iterations: int,
    alo_price_quadrature: int,
    alo_equation: str,
    alo_rule: str,
    boundary_points: int,
    threads: int,
    double_boundary_tree: bool = True,
) -> tuple[dict[str, npt.NDArray[Any]], int]: ...
def implied_vol(
    price: npt.NDArray[np.float64],
    S: npt.NDArray[np.float64],
    K: npt.NDArray[np.float64],
    T: npt.NDArray[np.float64],
    r: npt.NDArray[np.float64],
    q: npt.NDArray[np.float64],
    option_type: npt.NDArray[np.int8],
    model: str = "bsm",
    gpu: bool = False,
    threads: int = 0,
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.int8], dict[str, int]]: ...
def normalised_black(x: float, s: float) -> float: ...
def normalised_implied_vol(beta: float, x: float) -> tuple[float, int]: ...
def option_type_codes(
    option_type: npt.NDArray[Any], threads: int = 0
) -> tuple[npt.NDArray[np.int8], int | None]: ...
def option_type_codes_list(
    option_type: Sequence[str | bytes],
) -> tuple[npt.NDArray[np.int8], int | None]: ...
def output_pool_kept_bytes() -> int: ...
def philox4x32_10(counter: Sequence[int], key: Sequence[int]) -> list[int]: ...
def philox_normals(
    seed: int, first_path: int, paths: int, factors: int, threads: int = 0, gpu: bool = False
) -> npt.NDArray[np.float64]: ...

MC_MAX_PATHS: int
MC_MAX_LOSSES: int
MC_MAX_DOF: int

def monte_carlo(
    spot: npt.NDArray[np.float64],
    volatility: npt.NDArray[np.float64],
    dividend_yield: npt.NDArray[np.float64],
    rate: float,
    cholesky: npt.NDArray[np.float64],
    vol_of_vol: npt.NDArray[np.float64] | None,
    spot_vol_correlation: npt.NDArray[np.float64] | None,
    underlying: npt.NDArray[np.int32],
    kind: npt.NDArray[np.int8],
    option_type: npt.NDArray[np.int8],
    strike: npt.NDArray[np.float64],
    expiry: npt.NDArray[np.float64],
    value_now: npt.NDArray[np.float64],
    grid_offset: npt.NDArray[np.int64],
    grid_size: npt.NDArray[np.int32],
    grid_x0: npt.NDArray[np.float64],
    grid_dx: npt.NDArray[np.float64],
    grid_vsize: npt.NDArray[np.int32],
    grid_y0: npt.NDArray[np.float64],
    grid_dy: npt.NDArray[np.float64],
    grid_values: npt.NDArray[np.float64],
    instrument: npt.NDArray[np.int32],
    portfolio: npt.NDArray[np.int32],
    units: npt.NDArray[np.float64],
    portfolios: int,
    dg_delta: npt.NDArray[np.float64],
    dg_gamma: npt.NDArray[np.float64],
    dg_vega: npt.NDArray[np.float64] | None,
    dg_theta: npt.NDArray[np.float64],
    horizon: float,
    seed: int,
    first_path: int,
    paths: int,
    student_t_dof: int,
    full: bool,
    delta_gamma: bool,
    confidence: float,
    keep_losses: bool,
    threads: int = 0,
    gpu: bool = False,
) -> tuple[
    npt.NDArray[np.float64] | None,
    npt.NDArray[np.float64] | None,
    npt.NDArray[np.float64] | None,
    npt.NDArray[np.float64],
]: ...

# Drift detection (tradecore.inference.drift): columns are 1-D float64/float32 arrays.
def drift_sort_columns(
    columns: Sequence[npt.NDArray[Any]], threads: int = 0
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.int64]]: ...
def drift_bin_counts(
    sorted: npt.NDArray[np.float64], edges: npt.NDArray[np.float64], threads: int = 0
) -> npt.NDArray[np.int64]: ...
def drift_compare(
    columns: Sequence[npt.NDArray[Any]],
    ref_sorted: npt.NDArray[np.float64],
    edges: npt.NDArray[np.float64],
    threads: int = 0,
) -> tuple[
    npt.NDArray[np.float64], npt.NDArray[np.float64], npt.NDArray[np.int64], npt.NDArray[np.int64]
]: ...
def drift_mmd_linear(
    x: Sequence[npt.NDArray[Any]],
    y: Sequence[npt.NDArray[Any]],
    center: npt.NDArray[np.float64],
    inv_scale: npt.NDArray[np.float64],
    gamma: float,
    pairs: int,
    threads: int = 0,
) -> tuple[float, float, int, int, int]: ...
def drift_ks_wasserstein_sorted(
    u: npt.NDArray[np.float64], v: npt.NDArray[np.float64]
) -> tuple[float, float]: ...
