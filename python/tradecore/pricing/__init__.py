"""Option pricing (batch first; every argument a scalar or an array, broadcast numpy-style).

Greeks are raw partial derivatives per year and per 1.00 of vol/rate: ``delta``=dV/dS,
``gamma``=d2V/dS2, ``vega``=dV/dsigma, ``theta``=-dV/dT, ``rho``=dV/dr, ``phi``=dV/dq.
"""

from __future__ import annotations

from tradecore.pricing.european import (
    ALL_GREEKS,
    BLACK76_GREEKS,
    EUROPEAN_OUTPUTS,
    FIRST_ORDER_GREEKS,
    GPU_AUTO_THRESHOLD,
    InvalidInput,
    black76,
    check_european,
    european,
    option_type_codes,
)
from tradecore.pricing.implied_vol import (
    ImpliedVolResult,
    IVStatus,
    implied_vol,
    implied_vol_black76,
)

__all__ = [
    "ALL_GREEKS",
    "BLACK76_GREEKS",
    "EUROPEAN_OUTPUTS",
    "FIRST_ORDER_GREEKS",
    "GPU_AUTO_THRESHOLD",
    "IVStatus",
    "ImpliedVolResult",
    "InvalidInput",
    "black76",
    "check_european",
    "european",
    "implied_vol",
    "implied_vol_black76",
    "option_type_codes",
]
