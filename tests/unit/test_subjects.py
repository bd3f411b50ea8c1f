"""NATS subject tokens built from request fields: checked before they reach a connection (a
subject over the server's control-line limit makes nats-server drop the whole connection)."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from tradecore import subjects as sj
from tradecore.subjects import MAX_TOKEN_LENGTH, md_subject, validate_token


def test_md_subject_joins_valid_tokens() -> None:
    assert md_subject("XNAS", "GOOG", "quote") == "md.XNAS.GOOG.quote"
    assert md_subject("synthetic", "BRK-B_1", "ticks") == "md.synthetic.BRK-B_1.ticks"
    assert validate_token("symbol", "Ü" * MAX_TOKEN_LENGTH) == "Ü" * MAX_TOKEN_LENGTH


@pytest.mark.parametrize(
    "value,needle",
    [
        ("", "must not be empty"),
        ("S" * (MAX_TOKEN_LENGTH + 1), f"at most {MAX_TOKEN_LENGTH} characters"),
        ("S" * 4100, "got 4100"),
        ("a.b", "'.'"),
        ("a*", "'*'"),
        (">", "'>'"),
        ("a b", "' '"),
        ("a\tb", "'\\t'"),
        ("a\r\nPUB x 1", "'\\r'"),
        ("a\x00b", "'\\x00'"),
        ("a\x7fb", "'\\x7f'"),
        ("a\u2028b", "'\\u2028'"),
    ],
)
def test_bad_tokens_name_the_field(value: str, needle: str) -> None:
    with pytest.raises(ValueError) as err:
        validate_token("underlying.symbol", value)
    message = str(err.value)
    assert message.startswith("underlying.symbol ")
    assert needle in message
    assert len(message) < 300  # an over-long value is not echoed whole


@pytest.mark.parametrize("field", ["venue", "symbol", "kind"])
def test_md_subject_names_the_bad_part(field: str) -> None:
    parts = {"venue": "XNAS", "symbol": "GOOG", "kind": "quote", field: "bad token"}
    with pytest.raises(ValueError, match=f"^{field} "):
        md_subject(parts["venue"], parts["symbol"], parts["kind"])


def test_every_scheme_builds_its_subjects() -> None:
    assert [md_subject("XNAS", "GOOG", k) for k in sj.MdKind] == [
        "md.XNAS.GOOG.quote",
        "md.XNAS.GOOG.trade",
        "md.XNAS.GOOG.trades",
        "md.XNAS.GOOG.book",
        "md.XNAS.GOOG.ticks",
    ]
    assert [sj.exec_subject(k, "ACC-1") for k in sj.ExecKind] == [
        "exec.order.ACC-1",
        "exec.fill.ACC-1",
        "exec.position.ACC-1",
    ]
    assert [sj.risk_subject(k, "ACC-1") for k in sj.RiskKind] == [
        "risk.snapshot.ACC-1",
        "risk.alert.ACC-1",
        "risk.state.ACC-1",
    ]
    assert [sj.risk_journal_subject(k, "ACC-1") for k in sj.RiskJournalKind] == [
        "risk.journal.limits.ACC-1",
        "risk.journal.positions.ACC-1",
    ]
    assert [sj.model_subject(k, "svi") for k in sj.ModelKind] == [
        "model.surface.svi",
        "model.signal.svi",
        "model.drift.svi",
    ]
    assert sj.model_drift_subject("svi") == "model.drift.svi"
    # a kind given as its string is the same kind
    assert sj.exec_subject("fill", "A") == sj.exec_subject(sj.ExecKind.FILL, "A")
    assert sj.PRICING_PRICE == "pricing.v1.price"
    assert sj.PRICING_PRICE in sj.REQUEST_REPLY
    assert sj.MARKETDATA_DAILY_CLOSES == "marketdata.v1.daily_closes"
    assert sj.MARKETDATA_DAILY_CLOSES in sj.REQUEST_REPLY
    # every request/reply subject is <service>.v<N>.<method>, each token valid, none twice
    assert len(set(sj.REQUEST_REPLY)) == len(sj.REQUEST_REPLY)
    for subject in sj.REQUEST_REPLY:
        service, version, method = subject.split(".")
        assert version[0] == "v" and version[1:].isdigit(), subject
        assert sj.validate_token("method", method) and sj.validate_token("service", service)


def test_filters_put_wildcards_for_the_parts_left_out() -> None:
    assert sj.md_filter(sj.MdKind.TICKS) == "md.*.*.ticks"
    assert sj.md_filter(venue="XNAS") == "md.XNAS.*.*"
    assert sj.md_filter(sj.MdKind.QUOTE, "XNAS", "GOOG") == md_subject("XNAS", "GOOG", "quote")
    assert sj.exec_filter(account="A1") == "exec.*.A1"
    assert sj.exec_filter() == "exec.*.*"
    assert sj.risk_filter(sj.RiskKind.ALERT) == "risk.alert.*"
    assert sj.model_filter(sj.ModelKind.SIGNAL) == "model.signal.*"
    assert sj.risk_journal_filter(sj.RiskJournalKind.LIMITS) == "risk.journal.limits.*"
    assert sj.risk_journal_filter(account="A1") == "risk.journal.*.A1"


def test_parse_md_subject_inverts_md_subject() -> None:
    assert sj.parse_md_subject(md_subject("XNAS", "GOOG", "book")) == (
        "XNAS",
        "GOOG",
        sj.MdKind.BOOK,
    )
    for bad in ("md.XNAS.GOOG", "exec.fill.A", "md.XNAS.GOOG.nope", "md.XNAS..quote"):
        with pytest.raises(ValueError):
            sj.parse_md_subject(bad)


@pytest.mark.parametrize(
    "build",
    [
        lambda k: md_subject("XNAS", "GOOG", k),
        lambda k: sj.exec_subject(k, "A"),
        lambda k: sj.risk_subject(k, "A"),
        lambda k: sj.model_subject(k, "m"),
        lambda k: sj.risk_journal_subject(k, "A"),
        lambda k: sj.risk_journal_filter(k),
        lambda k: sj.md_filter(k),
        lambda k: sj.exec_filter(k),
        lambda k: sj.risk_filter(k),
        lambda k: sj.model_filter(k),
    ],
)
@pytest.mark.parametrize("kind", ["", "quotes", "fill.x", "*", ">", "snapshot "])
def test_unknown_kinds_are_refused(build: Callable[[str], str], kind: str) -> None:
    with pytest.raises(ValueError, match=r"^kind must be one of "):
        build(kind)


def test_a_kind_of_one_scheme_is_not_a_kind_of_another() -> None:
    with pytest.raises(ValueError, match=r"^kind must be one of order, fill, position "):
        sj.exec_subject(sj.RiskKind.ALERT, "A")
    with pytest.raises(ValueError, match=r"^kind "):
        md_subject("XNAS", "GOOG", sj.ExecKind.FILL)


@pytest.mark.parametrize(
    "build,field",
    [
        (lambda v: sj.exec_subject(sj.ExecKind.FILL, v), "account"),
        (lambda v: sj.risk_subject(sj.RiskKind.STATE, v), "account"),
        (lambda v: sj.model_subject(sj.ModelKind.SURFACE, v), "model"),
        (lambda v: sj.risk_journal_subject(sj.RiskJournalKind.LIMITS, v), "account"),
        (lambda v: sj.risk_journal_filter(account=v), "account"),
        (lambda v: sj.exec_filter(account=v), "account"),
        (lambda v: sj.risk_filter(account=v), "account"),
        (lambda v: sj.model_filter(model=v), "model"),
        (lambda v: sj.model_drift_subject(v), "model"),
        (lambda v: sj.md_filter(venue=v), "venue"),
        (lambda v: sj.md_filter(symbol=v), "symbol"),
    ],
)
@pytest.mark.parametrize("value", ["", "a.b", "*", ">", "a b", "x" * (MAX_TOKEN_LENGTH + 1)])
def test_bad_tokens_are_refused_in_every_scheme(
    build: Callable[[str], str], field: str, value: str
) -> None:
    with pytest.raises(ValueError, match=f"^{field} "):
        build(value)


def test_the_execution_journal_has_its_own_scheme() -> None:
    assert [sj.exec_journal_subject(k, "ACC-1") for k in sj.ExecJournalKind] == [
        "exec.journal.command.ACC-1",
        "exec.journal.event.ACC-1",
    ]
    assert sj.exec_journal_filter() == "exec.journal.*.*"
    assert sj.exec_journal_filter(account="A1") == "exec.journal.*.A1"
    assert sj.exec_journal_filter(sj.ExecJournalKind.EVENT) == "exec.journal.event.*"
    # four tokens: no subscription to the execution events (exec.<kind>.<account>) sees it
    assert sj.exec_journal_subject("command", "A1").count(".") == 3
    with pytest.raises(ValueError, match=r"^kind must be one of command, event "):
        sj.exec_journal_subject("fill", "A1")
    with pytest.raises(ValueError, match=r"^account "):
        sj.exec_journal_subject("event", "a.b")
    with pytest.raises(ValueError, match=r"^account "):
        sj.exec_journal_filter(account="*")
