"""Exceptions services raise, and the one mapping from exceptions to gRPC status codes."""

from __future__ import annotations

import asyncio

import grpc
from tradecore.errors import (
    NotFoundError,
    PreconditionError,
    ResourceExhaustedError,
    TradecoreError,
    UnavailableError,
)

# The project's own exception types live in the library (tradecore.errors, no gRPC there) so
# that library code raises them too; the services import them from here.
__all__ = [
    "NotFoundError",
    "PermissionDeniedError",
    "PreconditionError",
    "ResourceExhaustedError",
    "UnavailableError",
    "status_for",
]


class PermissionDeniedError(TradecoreError):
    """The caller's token does not allow the call (e.g. a trader acting on another account)."""


def status_for(exc: BaseException) -> grpc.StatusCode:
    """The gRPC status code for an exception raised while serving a call (gRPC and NATS alike).

    Only the project's own types, ValueError (an invalid argument), the builtin timeout and
    connection errors of a dependency and NotImplementedError (a method the service does not
    define: UNIMPLEMENTED) have a code of their own; anything else, a KeyError from
    a bug included, is INTERNAL: logged with its traceback and the request id."""
    if isinstance(exc, ValueError):
        return grpc.StatusCode.INVALID_ARGUMENT
    if isinstance(exc, PermissionDeniedError):
        return grpc.StatusCode.PERMISSION_DENIED
    if isinstance(exc, NotFoundError):  # not LookupError: a stray KeyError is a bug (INTERNAL)
        return grpc.StatusCode.NOT_FOUND
    if isinstance(exc, PreconditionError):
        return grpc.StatusCode.FAILED_PRECONDITION
    if isinstance(exc, ResourceExhaustedError):
        return grpc.StatusCode.RESOURCE_EXHAUSTED
    if isinstance(exc, TimeoutError | asyncio.TimeoutError):
        return grpc.StatusCode.DEADLINE_EXCEEDED
    if isinstance(exc, UnavailableError | ConnectionError):
        return grpc.StatusCode.UNAVAILABLE
    if isinstance(exc, TradecoreError):
        return grpc.StatusCode.FAILED_PRECONDITION
    if isinstance(exc, NotImplementedError):
        # What the generated servicer base raises for a method the service does not define.
        return grpc.StatusCode.UNIMPLEMENTED
    return grpc.StatusCode.INTERNAL
