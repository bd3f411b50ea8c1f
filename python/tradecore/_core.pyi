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
) -> tuple[dict[str, npt.NDArray[np.float64]], int]: ...
