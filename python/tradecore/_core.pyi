from collections.abc import Mapping, Sequence

import numpy as np
import numpy.typing as npt

__version__: str

class Error(RuntimeError): ...

def cuda_available() -> bool: ...
def cuda_compiled() -> bool: ...
def cuda_describe() -> str: ...
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
) -> dict[str, npt.NDArray[np.float64]]: ...
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
