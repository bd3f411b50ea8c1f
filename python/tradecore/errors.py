"""Exceptions raised by the core.

Invalid arguments raise the built-in :class:`ValueError` with a message naming the argument.
Domain failures (a model that cannot produce a value, a device that is not there) raise
:class:`TradecoreError` or a subclass.
"""

from __future__ import annotations

from tradecore import _core

# Error messages quote at most this many characters of a bad value.
QUOTE_LIMIT = 64

TradecoreError = _core.Error
# A method that does not price the requested regime (e.g. the double-boundary American case).
UnsupportedRegime = _core.UnsupportedRegime


class NotFoundError(LookupError):
    """The requested entity (a model, a version, an order) does not exist."""


class PreconditionError(RuntimeError):
    """The request is valid but the system is not in a state to serve it."""


class UnavailableError(RuntimeError):
    """A dependency (NATS, ClickHouse, a device) is down."""


class ResourceExhaustedError(RuntimeError):
    """A limit was hit (a full queue, a cap on a request's size)."""


def quote(value: object, limit: int = QUOTE_LIMIT) -> str:
    """``repr(value)`` for an error message, cut to its first ``limit`` characters plus
    ``…(N chars)`` when longer (N the length of the whole repr), so a huge bad value never
    becomes a huge message."""
    text = repr(value)
    if len(text) <= limit:
        return text
    return f"{text[:limit]}…({len(text)} chars)"


__all__ = [
    "QUOTE_LIMIT",
    "NotFoundError",
    "PreconditionError",
    "ResourceExhaustedError",
    "TradecoreError",
    "UnavailableError",
    "UnsupportedRegime",
    "quote",
]
