"""NATS subjects built from request fields.

A subject is tokens joined by ``.``; a token taken from a request (a venue, a symbol) is
checked here before it reaches a connection: an empty token, ``.``, the wildcards ``*`` and
``>``, whitespace or control characters would address other subjects or break the protocol
line, and a very long one exceeds nats-server's control-line limit (4096 bytes), which makes
the server close the client's whole connection. Pure string functions: no NATS client here.
"""

from __future__ import annotations

import re

__all__ = ["MAX_TOKEN_LENGTH", "md_subject", "validate_token"]

MAX_TOKEN_LENGTH = 128
# '.', the wildcards, any whitespace (Unicode included) and C0/DEL/C1 control characters.
_BAD = re.compile(r"[.*>\s\x00-\x1f\x7f-\x9f]")
_SHOWN = 40  # characters of a bad value quoted in the message


def _shown(value: str) -> str:
    if len(value) <= _SHOWN:
        return repr(value)
    return f"{value[:_SHOWN]!r}... ({len(value)} characters)"


def validate_token(name: str, value: str) -> str:
    """``value`` if it can be one token of a NATS subject, else ValueError naming ``name``."""
    if not value:
        raise ValueError(f"{name} must not be empty (it is a NATS subject token)")
    if len(value) > MAX_TOKEN_LENGTH:
        raise ValueError(
            f"{name} must be at most {MAX_TOKEN_LENGTH} characters (it is a NATS subject "
            f"token; got {len(value)})"
        )
    bad = _BAD.search(value)
    if bad is not None:
        raise ValueError(
            f"{name} must not contain {bad.group()!r} (a NATS subject token has no '.', '*', "
            f"'>', whitespace or control characters; got {_shown(value)})"
        )
    return value


def md_subject(venue: str, symbol: str, kind: str) -> str:
    """``md.<venue>.<symbol>.<kind>``, each part checked (ValueError names ``venue``,
    ``symbol`` or ``kind``)."""
    return (
        f"md.{validate_token('venue', venue)}.{validate_token('symbol', symbol)}"
        f".{validate_token('kind', kind)}"
    )
