"""NATS subjects: the one definition of every subject the services publish, subscribe or call.

Schemes (each kind is a member of its enum; the payloads are the ``tradecore.events.v1``
contracts, see docs/architecture.md):

===============================  =======================================================
``md.<venue>.<symbol>.<kind>``   market data (:class:`MdKind`: quote, trade, trades,
                                 book, ticks)
``exec.<kind>.<account>``        execution (:class:`ExecKind`: order, fill, position)
``exec.journal.<kind>.<account>`` the execution service's journal (:class:`ExecJournalKind`:
                                 command, event; JetStream stream EXEC_JOURNAL)
``risk.<kind>.<account>``        risk (:class:`RiskKind`: snapshot, alert, state)
``risk.journal.<kind>.<account>`` the risk service's journal (:class:`RiskJournalKind`:
                                 limits, positions; JetStream stream RISK_JOURNAL)
``model.<kind>.<model>``         model outputs (:class:`ModelKind`: surface, signal, drift)
``<service>.v<N>.<method>``      request/reply (:data:`REQUEST_REPLY`)
===============================  =======================================================

A subject is tokens joined by ``.``; a token taken from a request (a venue, a symbol, an
account) is checked here before it reaches a connection: an empty token, ``.``, the wildcards
``*`` and ``>``, whitespace or control characters would address other subjects or break the
protocol line, and a very long one exceeds nats-server's control-line limit (4096 bytes), which
makes the server close the client's whole connection. The ``*_filter`` functions build
subscription subjects, ``*`` standing for a part left out. Pure string functions: no NATS
client here.
"""

from __future__ import annotations

import re
from enum import StrEnum
from typing import TypeVar

__all__ = [
    "ANY",
    "MARKETDATA_DAILY_CLOSES",
    "MARKETDATA_VOLUME_CURVE",
    "MAX_TOKEN_LENGTH",
    "PRICING_PRICE",
    "REQUEST_REPLY",
    "RISK_COMPUTE_VAR",
    "RISK_COMPUTE_VAR_BATCH",
    "ExecJournalKind",
    "ExecKind",
    "MdKind",
    "ModelKind",
    "RiskJournalKind",
    "RiskKind",
    "exec_filter",
    "exec_journal_filter",
    "exec_journal_subject",
    "exec_subject",
    "md_filter",
    "md_subject",
    "model_drift_subject",
    "model_filter",
    "model_subject",
    "parse_md_subject",
    "risk_filter",
    "risk_journal_filter",
    "risk_journal_subject",
    "risk_subject",
    "validate_token",
]

MAX_TOKEN_LENGTH = 128
ANY = "*"  # the single-token wildcard, for the parts a ``*_filter`` leaves out
# '.', the wildcards, any whitespace (Unicode included) and C0/DEL/C1 control characters.
_BAD = re.compile(r"[.*>\s\x00-\x1f\x7f-\x9f]")
_SHOWN = 40  # characters of a bad value quoted in the message


class MdKind(StrEnum):
    """What a ``md.<venue>.<symbol>.<kind>`` message holds."""

    QUOTE = "quote"  # events.v1.Quote
    TRADE = "trade"  # events.v1.Trade
    TRADES = "trades"  # packed tick batch of executions
    BOOK = "book"  # packed tick batch of book level updates
    TICKS = "ticks"  # packed tick batch, JetStream stream MD_TICKS


class ExecKind(StrEnum):
    """What a ``exec.<kind>.<account>`` message holds."""

    ORDER = "order"  # events.v1.OrderUpdate
    FILL = "fill"  # events.v1.Fill
    POSITION = "position"  # events.v1.Position


class ExecJournalKind(StrEnum):
    """What a ``exec.journal.<kind>.<account>`` message holds (the execution service's
    journal, replayed at its start; four tokens, so ``exec.*.*`` does not match it)."""

    COMMAND = "command"  # execution.v1.JournalEntry holding a command
    EVENT = "event"  # execution.v1.JournalEntry holding an event


class RiskKind(StrEnum):
    """What a ``risk.<kind>.<account>`` message holds."""

    SNAPSHOT = "snapshot"  # events.v1.RiskSnapshot
    ALERT = "alert"  # events.v1.Alert
    STATE = "state"  # events.v1.TradingState


class RiskJournalKind(StrEnum):
    """What a ``risk.journal.<kind>.<account>`` message holds (the risk service's own
    journal, read back at its start; the trading state is journaled on ``risk.state``)."""

    LIMITS = "limits"  # risk.v1.Limits
    POSITIONS = "positions"  # risk.v1.SetPositionsRequest


class ModelKind(StrEnum):
    """What a ``model.<kind>.<model>`` message holds."""

    SURFACE = "surface"  # a fitted volatility surface of the model
    SIGNAL = "signal"  # a trading signal the model emits
    DRIFT = "drift"  # events.v1.DriftAlert: the model's inputs/outputs drifted


# Request/reply subjects, ``<service>.v<N>.<method>``: the request is the method's request
# message serialized, the reply its response (or an error: services/common/nats_rpc.py).
PRICING_PRICE = "pricing.v1.price"  # PricingService.Price
RISK_COMPUTE_VAR = "risk.v1.compute_var"  # RiskService.ComputeVaR (queue group "risk")
RISK_COMPUTE_VAR_BATCH = "risk.v1.compute_var_batch"  # RiskService.ComputeVaRBatch
# events.v1.DailyClosesRequest -> events.v1.DailyCloses, from the market-data tick store
# (queue group "marketdata"): what the risk service reads when it cannot open that store.
MARKETDATA_DAILY_CLOSES = "marketdata.v1.daily_closes"
# events.v1.VolumeCurveRequest -> events.v1.VolumeCurve, from the market-data tick store (queue
# group "marketdata"): the stored intraday volume curve a VWAP algo follows.
MARKETDATA_VOLUME_CURVE = "marketdata.v1.volume_curve"
REQUEST_REPLY: tuple[str, ...] = (
    PRICING_PRICE,
    RISK_COMPUTE_VAR,
    RISK_COMPUTE_VAR_BATCH,
    MARKETDATA_DAILY_CLOSES,
    MARKETDATA_VOLUME_CURVE,
)


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


_K = TypeVar("_K", bound=StrEnum)


def _kind(kinds: type[_K], value: str) -> _K:
    """``value`` as a member of ``kinds`` (ValueError naming ``kind`` and the valid ones)."""
    try:
        return kinds(value)
    except ValueError:
        names = ", ".join(k.value for k in kinds)
        raise ValueError(f"kind must be one of {names} (got {_shown(str(value))})") from None


def _part(name: str, value: str | None) -> str:
    return ANY if value is None else validate_token(name, value)


def md_subject(venue: str, symbol: str, kind: MdKind | str) -> str:
    """``md.<venue>.<symbol>.<kind>``, each part checked (ValueError names ``venue``,
    ``symbol`` or ``kind``)."""
    k = _kind(MdKind, kind)
    return f"md.{validate_token('venue', venue)}.{validate_token('symbol', symbol)}.{k}"


def md_filter(
    kind: MdKind | str | None = None, venue: str | None = None, symbol: str | None = None
) -> str:
    """A subscription to market data: ``md_filter(MdKind.TICKS)`` is ``md.*.*.ticks``."""
    k = ANY if kind is None else _kind(MdKind, kind).value
    return f"md.{_part('venue', venue)}.{_part('symbol', symbol)}.{k}"


def parse_md_subject(subject: str) -> tuple[str, str, MdKind]:
    """``(venue, symbol, kind)`` of a market-data subject (ValueError when it is none)."""
    parts = subject.split(".")
    if len(parts) != 4 or parts[0] != "md":
        raise ValueError(f"subject is not md.<venue>.<symbol>.<kind> (got {_shown(subject)})")
    _, venue, symbol, kind = parts
    return validate_token("venue", venue), validate_token("symbol", symbol), _kind(MdKind, kind)


def exec_subject(kind: ExecKind | str, account: str) -> str:
    """``exec.<kind>.<account>`` (ValueError names ``kind`` or ``account``)."""
    return f"exec.{_kind(ExecKind, kind)}.{validate_token('account', account)}"


def exec_filter(kind: ExecKind | str | None = None, account: str | None = None) -> str:
    """A subscription to execution events: ``exec_filter(account="A1")`` is ``exec.*.A1``."""
    k = ANY if kind is None else _kind(ExecKind, kind).value
    return f"exec.{k}.{_part('account', account)}"


def exec_journal_subject(kind: ExecJournalKind | str, account: str) -> str:
    """``exec.journal.<kind>.<account>`` (ValueError names ``kind`` or ``account``)."""
    return f"exec.journal.{_kind(ExecJournalKind, kind)}.{validate_token('account', account)}"


def exec_journal_filter(
    kind: ExecJournalKind | str | None = None, account: str | None = None
) -> str:
    """A subscription to the journal: ``exec_journal_filter(account="A1")`` is
    ``exec.journal.*.A1``."""
    k = ANY if kind is None else _kind(ExecJournalKind, kind).value
    return f"exec.journal.{k}.{_part('account', account)}"


def risk_subject(kind: RiskKind | str, account: str) -> str:
    """``risk.<kind>.<account>`` (ValueError names ``kind`` or ``account``)."""
    return f"risk.{_kind(RiskKind, kind)}.{validate_token('account', account)}"


def risk_filter(kind: RiskKind | str | None = None, account: str | None = None) -> str:
    """A subscription to risk events: ``risk_filter(RiskKind.ALERT)`` is ``risk.alert.*``."""
    k = ANY if kind is None else _kind(RiskKind, kind).value
    return f"risk.{k}.{_part('account', account)}"


def risk_journal_subject(kind: RiskJournalKind | str, account: str) -> str:
    """``risk.journal.<kind>.<account>`` (ValueError names ``kind`` or ``account``)."""
    return f"risk.journal.{_kind(RiskJournalKind, kind)}.{validate_token('account', account)}"


def risk_journal_filter(
    kind: RiskJournalKind | str | None = None, account: str | None = None
) -> str:
    """A subscription to the journal: ``risk_journal_filter(RiskJournalKind.LIMITS)`` is
    ``risk.journal.limits.*``."""
    k = ANY if kind is None else _kind(RiskJournalKind, kind).value
    return f"risk.journal.{k}.{_part('account', account)}"


def model_subject(kind: ModelKind | str, model: str) -> str:
    """``model.<kind>.<model>`` (ValueError names ``kind`` or ``model``)."""
    return f"model.{_kind(ModelKind, kind)}.{validate_token('model', model)}"


def model_drift_subject(model: str) -> str:
    """``model.drift.<model>``: the model's DriftAlerts (ValueError names ``model``)."""
    return model_subject(ModelKind.DRIFT, model)


def model_filter(kind: ModelKind | str | None = None, model: str | None = None) -> str:
    """A subscription to model outputs: ``model_filter(ModelKind.SIGNAL)`` is
    ``model.signal.*``."""
    k = ANY if kind is None else _kind(ModelKind, kind).value
    return f"model.{k}.{_part('model', model)}"
