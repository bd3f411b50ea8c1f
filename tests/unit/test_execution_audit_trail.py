"""services/execution/audit_trail.py: journal messages into the tamper-evident audit log in stream
order, each entry once across restarts, and the signing key made at first start."""

from __future__ import annotations

import base64
import json
import stat
from pathlib import Path

from tradecore import audit
from tradecore_api.execution.v1 import execution_pb2 as pb
from tradecore_services.execution.audit_trail import (
    KEY_FILE,
    PUBLIC_KEY_FILE,
    AuditTrail,
    record_kind,
    signer_for,
)


def submit(coid: str) -> pb.JournalEntry:
    e = pb.JournalEntry(account="A1", request_id=f"r-{coid}", time_ns=5)
    e.submit.account = "A1"
    e.submit.client_order_id = coid
    return e


def event(name: str) -> pb.JournalEntry:
    return pb.JournalEntry(
        account="A1", time_ns=6, oms=pb.OmsRecord(type=name, json=b'{"order_id":"O1"}')
    )


def trail_positions(log: Path) -> list[tuple[int, int, str]]:
    out = []
    for r in audit.records_of(log):
        obj = json.loads(r.payload)
        assert base64.b64decode(obj["proto"])  # the journaled bytes
        out.append((obj["stream_seq"], obj["batch_index"], r.kind))
    return out


def test_messages_are_appended_in_stream_order_once_across_a_restart(tmp_path: Path) -> None:
    signer = audit.Signer.generate()
    log = tmp_path / "audit"
    t = AuditTrail(log, signer)
    t.open()
    t.offer(2, [event("OrderAccepted"), event("OrderFilled")])  # waits for 1
    t.offer(1, [submit("c1"), event("OrderCreated")])
    t.offer(1, [submit("c1"), event("OrderCreated")])  # a replay of what is there
    t.offer(3, [submit("c2")])
    t.close()
    assert trail_positions(log) == [
        (1, 0, "exec.command.submit"),
        (1, 1, "exec.event.oms.OrderCreated"),
        (2, 0, "exec.event.oms.OrderAccepted"),
        (2, 1, "exec.event.oms.OrderFilled"),
        (3, 0, "exec.command.submit"),
    ]
    t = AuditTrail(log, signer)
    t.open()
    for seq, entries in [(1, [submit("c1"), event("OrderCreated")]), (3, [submit("c2")])]:
        t.offer(seq, entries)  # the replay at start: nothing appended twice
    t.offer(4, [submit("c3")])
    t.close()
    assert [p[:2] for p in trail_positions(log)][-2:] == [(3, 0), (4, 0)]
    assert len(trail_positions(log)) == 6
    report = audit.verify(log, signer.public_key)
    assert report.ok and report.checkpoints >= 2, report.problem


def test_a_message_cut_short_is_completed_from_the_journal(tmp_path: Path) -> None:
    signer = audit.Signer.generate()
    log = tmp_path / "audit"
    t = AuditTrail(log, signer)
    t.open()
    t.offer(1, [submit("c1")])  # as if the process died after the first entry of a batch
    t.close()
    t = AuditTrail(log, signer)
    t.open()
    t.offer(1, [submit("c1"), event("OrderCreated")])
    t.close()
    assert [p[:2] for p in trail_positions(log)] == [(1, 0), (1, 1)]


def test_the_record_kind_names_the_entry() -> None:
    risk = pb.JournalEntry(account="A1")
    risk.risk_state.account = "A1"
    assert record_kind(risk) == "exec.event.risk_state"
    assert record_kind(event("LimitsSet")) == "exec.event.oms.LimitsSet"


def test_the_signing_key_is_made_once_readable_by_the_owner_only(tmp_path: Path) -> None:
    first = signer_for(tmp_path, env={})
    key = tmp_path / KEY_FILE
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    public = audit.load_public_key((tmp_path / PUBLIC_KEY_FILE).read_bytes())
    assert audit.key_id(public) == first.key_id
    assert signer_for(tmp_path, env={}).key_id == first.key_id  # loaded, not made again
    other = tmp_path / "other.pem"
    audit.Signer.generate().write(other)
    named = signer_for(tmp_path, env={audit.KEY_FILE_ENV: str(other)})
    assert named.key_id == audit.Signer.from_file(other).key_id != first.key_id
