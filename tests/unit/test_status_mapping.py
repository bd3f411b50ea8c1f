"""The one mapping from exceptions to status codes, shared by gRPC calls and NATS handlers."""

from __future__ import annotations

import grpc
import pytest
from tradecore.errors import TradecoreError
from tradecore_services.common.errors import (
    NotFoundError,
    PreconditionError,
    ResourceExhaustedError,
    UnavailableError,
    status_for,
)

C = grpc.StatusCode


@pytest.mark.parametrize(
    "exc,code",
    [
        (ValueError("x must be > 0"), C.INVALID_ARGUMENT),
        (NotFoundError("id: no feed 'a'"), C.NOT_FOUND),
        (PreconditionError("busy"), C.FAILED_PRECONDITION),
        (ResourceExhaustedError("limit"), C.RESOURCE_EXHAUSTED),
        (UnavailableError("NATS is down"), C.UNAVAILABLE),
        (ConnectionResetError(), C.UNAVAILABLE),
        (TimeoutError(), C.DEADLINE_EXCEEDED),
        (TradecoreError("engine"), C.FAILED_PRECONDITION),
        # What a generated servicer base raises for a method the service does not define.
        (NotImplementedError("Method not implemented!"), C.UNIMPLEMENTED),
        # Bugs, never a client's fault and never NOT_FOUND:
        (KeyError("contracts"), C.INTERNAL),
        (IndexError(3), C.INTERNAL),
        (LookupError("x"), C.INTERNAL),
        (AttributeError("x"), C.INTERNAL),
        (RuntimeError("x"), C.INTERNAL),
    ],
)
def test_status_for(exc: BaseException, code: grpc.StatusCode) -> None:
    assert status_for(exc) is code


def test_american_reports_bad_input_as_the_structured_error() -> None:
    """The European and American batch calls share one structured error for invalid input."""
    from tradecore import pricing

    for call in (pricing.european, pricing.american):
        with pytest.raises(pricing.InvalidInputError) as err:
            call([100.0, 100.0], 100.0, 1.0, 0.01, 0.0, [0.2, -0.2], "put")
        assert err.value.invalid.field == "volatility" and err.value.invalid.index == 1
        assert str(err.value).startswith("sigma[1] must be finite")
