"""NATS subject tokens built from request fields: checked before they reach a connection (a
subject over the server's control-line limit makes nats-server drop the whole connection)."""

from __future__ import annotations

import pytest
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
