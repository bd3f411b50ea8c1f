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
    model: str = "bsm",
) -> dict[str, npt.NDArray[np.float64]]: ...
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
