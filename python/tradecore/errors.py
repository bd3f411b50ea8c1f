"""Exceptions raised by the core.

Invalid arguments raise the built-in :class:`ValueError` with a message naming the argument.
Domain failures (a model that cannot produce a value, a device that is not there) raise
:class:`TradecoreError` or a subclass.
"""

from __future__ import annotations

from tradecore import _core

TradecoreError = _core.Error
# A method that does not price the requested regime (e.g. the double-boundary American case).
UnsupportedRegime = _core.UnsupportedRegime

__all__ = ["TradecoreError", "UnsupportedRegime"]
