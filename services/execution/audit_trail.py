"""The execution journal in the tamper-evident audit log (``tradecore.audit``): every command,
OMS event (orders, fills, limit and trading-state changes) and risk state the service journals
is appended as one record, in journal order, to a hash-chained log under the data directory,
with signed Merkle checkpoints. ``tradecore audit verify|export|prove`` read it.

Records. One per journal entry, in (stream sequence, place in its message) order, each entry
once: kind ``exec.<command|event>.<entry>`` (``exec.event.oms.<OMS event class>`` for OMS
events), source ``execution``, payload the JSON object ``{"stream_seq", "batch_index",
"account", "request_id", "time_ns", "proto"}`` (``proto``: the journaled ``JournalEntry``,
base64) with ``"oms": <the event's fields>`` added for OMS events.

Off the order's critical path. The journal (JetStream) is the record a call waits for; the
audit log follows it: after each acknowledged journal write its entries are queued (a
non-blocking put on the event loop) and a thread of its own appends them. Appends are written
at once (``fsync=False``: they survive a crash of the process) and made durable by a checkpoint
(signed, with ``fdatasync`` of the records it covers) every :data:`CHECKPOINT_INTERVAL_S` while
records arrive, and at shutdown. Whatever the log lacks after a crash of the machine (its
unsynced tail, or entries queued but not appended when the process died) is appended again from
the journal at the next start: the service replays the whole journal at start and offers every
message to the trail, which appends what follows its last record (a torn last record is cut by
``AuditLog.open(recover=True)``, kept aside and noted by an ``audit.recovered`` record).

The signing key is ``TRADECORE_AUDIT_KEY_FILE`` when set; otherwise ``<data dir>/audit-key.pem``,
made at the first start (Ed25519, PKCS#8 PEM, mode 0600) with its public key beside it in
``audit-key.pub.pem`` (what ``tradecore audit verify --public-key`` takes). The log directory is
``TRADECORE_EXECUTION_AUDIT_DIR``, default ``<data dir>/audit`` (where ``tradecore audit
--data-dir`` looks). The log has no update or delete path.
"""

from __future__ import annotations

import base64
import json
import logging
import os
import queue
import threading
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

from tradecore import audit
from tradecore_api.execution.v1 import execution_pb2 as pb

from .journal import kind_of

log = logging.getLogger("tradecore.execution.audit")

DIR_ENV = "TRADECORE_EXECUTION_AUDIT_DIR"
KEY_FILE = "audit-key.pem"
PUBLIC_KEY_FILE = "audit-key.pub.pem"
SOURCE = "execution"
#: How often, at most, a signed checkpoint (and with it an fdatasync) covers new records.
CHECKPOINT_INTERVAL_S = 1.0

Message = tuple[int, Sequence[pb.JournalEntry]]  # (stream sequence, its entries)


def signer_for(data_dir: Path, env: Mapping[str, str] | None = None) -> audit.Signer:
    """The key named by TRADECORE_AUDIT_KEY_FILE, else ``<data dir>/audit-key.pem`` (made, mode
    0600, with its public key beside it, when it does not exist)."""
    env = os.environ if env is None else env
    named = env.get(audit.KEY_FILE_ENV, "")
    if named:
        return audit.Signer.from_file(named)
    path = data_dir / KEY_FILE
    if path.exists():
        return audit.Signer.from_file(path)
    data_dir.mkdir(parents=True, exist_ok=True)
    signer = audit.Signer.generate()
    signer.write(path)
    (data_dir / PUBLIC_KEY_FILE).write_bytes(signer.public_key_pem())
    log.warning("audit: made the signing key %s (%s)", path, signer)
    return signer


def log_dir(data_dir: Path, env: Mapping[str, str] | None = None) -> Path:
    env = os.environ if env is None else env
    return Path(env.get(DIR_ENV, "") or audit.default_log_dir(data_dir))


def record_kind(entry: pb.JournalEntry) -> str:
    which = entry.WhichOneof("entry") or ""
    kind = f"exec.{kind_of(entry).value}.{which}"
    return f"{kind}.{entry.oms.type}" if which == "oms" else kind


def record_payload(seq: int, index: int, entry: pb.JournalEntry) -> bytes:
    head = json.dumps(
        {
            "stream_seq": seq,
            "batch_index": index,
            "account": entry.account,
            "request_id": entry.request_id,
            "time_ns": entry.time_ns,
            "proto": base64.b64encode(entry.SerializeToString()).decode(),
        },
        separators=(",", ":"),
    ).encode()
    if entry.WhichOneof("entry") == "oms":  # the event's fields, as the journal's codec wrote them
        return head[:-1] + b',"oms":' + entry.oms.json + b"}"
    return head


def position(record: audit.Record) -> tuple[int, int] | None:
    """(stream sequence, batch index) of a record this trail appended (None for others)."""
    if record.source != SOURCE:
        return None
    try:
        obj = json.loads(record.payload)
        return int(obj["stream_seq"]), int(obj["batch_index"])
    except (ValueError, KeyError, TypeError):
        return None


class AuditTrail:
    """Appends journal messages to the audit log in stream order, on a thread of its own."""

    def __init__(self, directory: Path, signer: audit.Signer) -> None:
        self.directory = directory
        self.signer = signer
        self._log: audit.AuditLog | None = None
        self._queue: queue.SimpleQueue[Message | None] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        #: The next stream sequence to append, and how many entries of it are appended.
        self._next = 1
        self._done_in_next = 0
        self._waiting: dict[int, Sequence[pb.JournalEntry]] = {}
        self._unsigned = 0  # records appended since the last checkpoint
        self.appended = 0

    def open(self) -> None:
        """Open (or make) the log, verifying it (audit.AuditLog.open), and find where the
        journal's copy stopped."""
        self._log = audit.AuditLog.open(self.directory, self.signer, fsync=False, recover=True)
        size = self._log.size
        for record in self._log.records(max(0, size - 1)) if size else ():
            at = position(record)
            if at is not None:
                self._next, self._done_in_next = at[0], at[1] + 1
        self._thread = threading.Thread(target=self._run, name="execution-audit", daemon=True)
        self._thread.start()

    def offer(self, seq: int, entries: Sequence[pb.JournalEntry]) -> None:
        """Queue the entries of the journal message at stream sequence ``seq`` (thread-safe,
        never blocks); a message already appended is skipped."""
        self._queue.put((seq, entries))

    def close(self) -> None:
        """Append what was queued, sign a checkpoint, close the log."""
        if self._thread is not None:
            self._queue.put(None)
            self._thread.join()
            self._thread = None
        if self._log is not None:
            if self._unsigned:
                self._log.checkpoint()
            self._log.close()
            self._log = None

    def _run(self) -> None:
        last_checkpoint = time.monotonic()
        while True:
            timeout = max(0.0, last_checkpoint + CHECKPOINT_INTERVAL_S - time.monotonic())
            try:
                item = self._queue.get(timeout=timeout if self._unsigned else None)
            except queue.Empty:
                item = ()  # type: ignore[assignment]
            if item is None:
                return
            try:
                if item:
                    self._take(*item)
                if self._unsigned and time.monotonic() >= last_checkpoint + CHECKPOINT_INTERVAL_S:
                    assert self._log is not None
                    self._log.checkpoint()
                    self._unsigned = 0
                    last_checkpoint = time.monotonic()
            except Exception:  # the journal keeps the entries: the next start appends them
                log.exception("audit: not appended; the next start appends it from the journal")

    def _take(self, seq: int, entries: Sequence[pb.JournalEntry]) -> None:
        if seq < self._next:
            return
        self._waiting[seq] = entries
        while self._next in self._waiting:
            self._append(self._next, self._waiting.pop(self._next))
            self._next += 1
            self._done_in_next = 0

    def _append(self, seq: int, entries: Sequence[pb.JournalEntry]) -> None:
        assert self._log is not None
        for i in range(self._done_in_next, len(entries)):
            entry = entries[i]
            self._log.append(
                record_kind(entry), record_payload(seq, i, entry), entry.time_ns, SOURCE
            )
            self._done_in_next = i + 1
            self._unsigned += 1
            self.appended += 1


__all__ = [
    "CHECKPOINT_INTERVAL_S",
    "DIR_ENV",
    "KEY_FILE",
    "PUBLIC_KEY_FILE",
    "AuditTrail",
    "log_dir",
    "record_kind",
    "record_payload",
    "signer_for",
]
