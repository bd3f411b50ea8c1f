"""Option pricing (batch first; every argument a scalar or an array, broadcast numpy-style).

Greeks are raw partial derivatives per year and per 1.00 of vol/rate: ``delta``=dV/dS,
``gamma``=d2V/dS2, ``vega``=dV/dsigma, ``theta``=-dV/dT, ``rho``=dV/dr, ``phi``=dV/dq.
"""

from __future__ import annotations

from tradecore.pricing.american import (
    AMERICAN_ENGINES,
    AMERICAN_GREEKS,
    AMERICAN_METHODS,
    DEFAULT_ALO,
    PRECISE_ALO,
    AloScheme,
    american,
)
from tradecore.pricing.european import (
    ALL_GREEKS,
    BLACK76_GREEKS,
    DOMAIN,
    EUROPEAN_OUTPUTS,
    FIRST_ORDER_GREEKS,
    GPU_AUTO_THRESHOLD,
    InvalidInput,
    InvalidInputError,
    PricingDomain,
    black76,
    check_european,
    european,
    european_arrays,
    european_row,
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
    "AMERICAN_ENGINES",
    "AMERICAN_GREEKS",
    "AMERICAN_METHODS",
    "BLACK76_GREEKS",
    "DEFAULT_ALO",
    "DOMAIN",
    "EUROPEAN_OUTPUTS",
    "FIRST_ORDER_GREEKS",
    "GPU_AUTO_THRESHOLD",
    "PRECISE_ALO",
    "AloScheme",
    "IVStatus",
    "ImpliedVolResult",
    "InvalidInput",
    "InvalidInputError",
    "PricingDomain",
    "american",
    "black76",
    "check_european",
    "european",
    "european_arrays",
    "european_row",
    "implied_vol",
    "implied_vol_black76",
    "option_type_codes",
]
