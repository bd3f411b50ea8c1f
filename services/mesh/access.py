"""The access audit: every call through the gateway, as Envoy logged it, in ClickHouse.

Envoy writes one JSON line per request (gateway/edge.py ``ACCESS_LOG_FORMAT``) to
``<data>/logs/gateway-access.jsonl``; this component (a child of the supervisor) reads the file
from where it left off, inserts batches into the table ``gateway_access`` of its own store
(chDB under ``<data>/clickhouse/access``, or the ClickHouse server of TRADECORE_CLICKHOUSE_DSN)
and records the file's inode and offset after each insert (``gateway-access.offset``). A
restart starts again after the last recorded batch; a batch inserted but not yet recorded is
inserted again and folded by the table's ReplacingMergeTree key (time, request id). The file is
rotated here: past ``ROTATE_BYTES`` it is renamed ``.1`` and Envoy is told (SIGUSR1) to reopen
its access log; the old file is read to its end before the new one.

chDB allows one process per data path, so ``tradecore access`` asks this process over the unix
socket ``<data>/access.sock`` (0600) while the mesh runs, and opens the store itself otherwise.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import os
import signal
import socket
import sys
import time
from collections.abc import Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

from tradecore.store import Migration, Store, connect, default_dsn

log = logging.getLogger("tradecore.access")

TABLE = "gateway_access"
# One insert a second at most while calls flow: each insert is a new part for ClickHouse to
# write and merge, which on a small machine is CPU taken from the calls (inserting four times a
# second put the gateway's ModelInfer p99 at 3.3-4.7 ms, once a second at 2.1-2.4 ms).
POLL_S = 1.0
BATCH_LINES = 5000
ROTATE_BYTES = 64 << 20  # TRADECORE_ACCESS_ROTATE_BYTES overrides
RETENTION_DAYS = 90
COLUMNS = (
    "time", "request_id", "client", "peer", "subject", "role", "account", "method", "path",
    "route", "protocol", "code", "grpc_status", "flags", "details", "duration_ms", "bytes_in",
    "bytes_out",
)  # fmt: skip
MIGRATIONS = (
    Migration(
        1401,
        "gateway_access",
        (
            f"""CREATE TABLE IF NOT EXISTS {TABLE} (
                time DateTime64(6, 'UTC'),
                request_id String,
                client String,
                peer String,
                subject String,
                role LowCardinality(String),
                account String,
                method LowCardinality(String),
                path String,
                route LowCardinality(String),
                protocol LowCardinality(String),
                code UInt16,
                grpc_status Int16,
                flags LowCardinality(String),
                details String,
                duration_ms UInt32,
                bytes_in UInt64,
                bytes_out UInt64
            ) ENGINE = ReplacingMergeTree ORDER BY (time, request_id)
            TTL toDateTime(time) + INTERVAL {RETENTION_DAYS} DAY""",
        ),
    ),
)
GRPC_CODES = (
    "OK", "CANCELLED", "UNKNOWN", "INVALID_ARGUMENT", "DEADLINE_EXCEEDED", "NOT_FOUND",
    "ALREADY_EXISTS", "PERMISSION_DENIED", "RESOURCE_EXHAUSTED", "FAILED_PRECONDITION", "ABORTED",
    "OUT_OF_RANGE", "UNIMPLEMENTED", "INTERNAL", "UNAVAILABLE", "DATA_LOSS", "UNAUTHENTICATED",
)  # fmt: skip


def socket_path(data_dir: Path) -> Path:
    return data_dir / "access.sock"


def _unix_address(path: Path) -> tuple[str, int | None]:
    """A name for ``path`` within the 107 bytes a unix socket address allows: the path itself,
    or the path through an open descriptor of its directory (the caller closes it)."""
    if len(os.fsencode(str(path))) < 100:
        return str(path), None
    fd = os.open(path.parent, os.O_RDONLY | os.O_DIRECTORY)
    return f"/proc/self/fd/{fd}/{path.name}", fd


def request(data_dir: Path, message: Mapping[str, Any], timeout: float = 10.0) -> Any:
    """Send one request to the running access component and return its answer; OSError when
    none answers."""
    address, fd = _unix_address(socket_path(data_dir))
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
            s.settimeout(timeout)
            s.connect(address)
            s.sendall(json.dumps(message).encode() + b"\n")
            with s.makefile("rb") as f:
                line = f.readline()
    finally:
        if fd is not None:
            os.close(fd)
    if not line:
        raise OSError("the access component closed the connection")
    answer = json.loads(line)
    if "error" in answer:
        raise ValueError(answer["error"])
    return answer["result"]


def ping(data_dir: Path) -> tuple[bool, str]:
    try:
        return True, f"{request(data_dir, {'op': 'ping'}, timeout=1.0)} rows"
    except (OSError, ValueError) as exc:
        return False, str(exc)


# ---------------------------------------------------------------------------- rows


def _int(value: Any, default: int = 0) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        return default


def _str(value: Any) -> str:
    return "" if value is None or value == "-" else str(value)


def parse_line(line: bytes) -> tuple[Any, ...] | None:
    """One access-log line as a row of ``COLUMNS`` (None for a line that is not an object)."""
    try:
        doc = json.loads(line)
    except ValueError:
        return None
    if not isinstance(doc, dict):
        return None
    try:
        when = datetime.fromtimestamp(float(doc.get("start", 0)), tz=UTC)
    except (TypeError, ValueError, OverflowError):
        when = datetime.fromtimestamp(0, tz=UTC)
    return (
        when,
        _str(doc.get("request_id")),
        _str(doc.get("client")),
        _str(doc.get("peer")),
        _str(doc.get("subject")),
        _str(doc.get("role")),
        _str(doc.get("account")),
        _str(doc.get("method")),
        _str(doc.get("path")),
        _str(doc.get("route")),
        _str(doc.get("protocol")),
        _int(doc.get("code")),
        _int(doc.get("grpc_status"), -1),
        _str(doc.get("flags")),
        _str(doc.get("details")),
        _int(doc.get("duration_ms")),
        _int(doc.get("bytes_in")),
        _int(doc.get("bytes_out")),
    )


def _since(value: str) -> datetime:
    """``10m``, ``2h``, ``7d``, ``30s`` ago, or an ISO 8601 time (UTC unless it says)."""
    units = {"s": 1, "m": 60, "h": 3600, "d": 86400}
    v = value.strip()
    if v[-1:] in units and v[:-1].isdigit():
        return datetime.fromtimestamp(time.time() - int(v[:-1]) * units[v[-1]], tz=UTC)
    try:
        t = datetime.fromisoformat(v)
    except ValueError:
        raise ValueError(
            f"since: {value!r} is neither a duration (30s, 10m, 2h, 7d) nor an ISO time"
        ) from None
    return t if t.tzinfo else t.replace(tzinfo=UTC)


def query(store: Store, filters: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Rows newest first by ``filters``: ``since`` (see ``_since``), ``who`` (subject, account,
    role or client certificate subject), ``route`` (part of the route name or path, any case),
    ``status`` (an HTTP code ``429``, a class ``4xx``, a gRPC name ``RESOURCE_EXHAUSTED``, or
    ``denied``: 401/403, UNAUTHENTICATED/PERMISSION_DENIED), ``limit`` (default 100). A
    ValueError names a bad filter."""
    where = ["1"]
    params: dict[str, Any] = {}
    unknown = sorted(set(filters) - {"since", "who", "route", "status", "limit"})
    if unknown:
        raise ValueError(f"unknown filter(s) {unknown}")
    if filters.get("since"):
        where.append("time >= {since:DateTime64(6, 'UTC')}")
        params["since"] = _since(str(filters["since"]))
    if filters.get("who"):
        where.append("({who:String} IN (subject, account, role, peer))")
        params["who"] = str(filters["who"])
    if filters.get("route"):
        where.append(
            "(positionCaseInsensitive(route, {route:String}) > 0"
            " OR positionCaseInsensitive(path, {route:String}) > 0)"
        )
        params["route"] = str(filters["route"])
    status = str(filters.get("status") or "").strip()
    if status:
        upper = status.upper()
        if status.isdigit():
            where.append("code = {code:UInt16}")
            params["code"] = int(status)
        elif len(status) == 3 and status[0].isdigit() and status[1:].lower() == "xx":
            where.append("intDiv(code, 100) = {klass:UInt16}")
            params["klass"] = int(status[0])
        elif upper in GRPC_CODES:
            where.append("grpc_status = {grpc:Int16}")
            params["grpc"] = GRPC_CODES.index(upper)
        elif status.lower() == "denied":
            where.append("(code IN (401, 403) OR grpc_status IN (7, 16))")
        else:
            raise ValueError(
                f"status: {status!r} is not an HTTP code (429), a class (4xx), a gRPC status "
                "name (RESOURCE_EXHAUSTED) or 'denied'"
            )
    limit = _int(filters.get("limit", 100), -1)
    if not 1 <= limit <= 100_000:
        raise ValueError(f"limit must be in 1..100000 (got {filters.get('limit')!r})")
    sql = (
        f"SELECT {', '.join(COLUMNS)} FROM {TABLE} FINAL WHERE {' AND '.join(where)} "
        f"ORDER BY time DESC LIMIT {limit}"
    )
    out = []
    for row in store.query_rows(sql, params):
        doc = dict(zip(COLUMNS, row, strict=True))
        t = doc["time"]
        if isinstance(t, datetime):
            doc["time"] = (t if t.tzinfo else t.replace(tzinfo=UTC)).isoformat()
        g = doc["grpc_status"]
        doc["grpc_status"] = GRPC_CODES[g] if 0 <= g < len(GRPC_CODES) else None
        out.append(doc)
    return out


# ---------------------------------------------------------------------------- the tailer


class Tailer:
    """Reads complete lines of the access log from the recorded offset, follows rotation."""

    def __init__(self, path: Path, rotate_bytes: int = ROTATE_BYTES) -> None:
        self.path = path
        self.rotate_bytes = rotate_bytes
        self.state_file = path.with_suffix(".offset")
        self.file: IO[bytes] | None = None
        self.inode = 0
        self.offset = 0
        with contextlib.suppress(OSError, ValueError, KeyError, TypeError):
            doc = json.loads(self.state_file.read_text())
            self.inode, self.offset = int(doc["inode"]), int(doc["offset"])

    def _open(self) -> bool:
        try:
            f = open(self.path, "rb")  # noqa: SIM115 (kept open across reads; see close)
        except FileNotFoundError:
            return False
        inode = os.fstat(f.fileno()).st_ino
        if inode != self.inode:
            # A file we have not read (the first one, or the one after a rotation).
            rotated = self.path.with_name(self.path.name + ".1")
            if self.inode and rotated.exists() and rotated.stat().st_ino == self.inode:
                f.close()  # finish the rotated file first
                f = open(rotated, "rb")  # noqa: SIM115
            else:
                self.inode, self.offset = inode, 0
        self.file = f
        return True

    def read(self) -> tuple[list[bytes], int]:
        """Complete lines from the offset (at most BATCH_LINES) and the offset after them."""
        if self.file is None and not self._open():
            return [], self.offset
        assert self.file is not None
        size = os.fstat(self.file.fileno()).st_size
        if size < self.offset:  # truncated: start again
            self.offset = 0
        self.file.seek(self.offset)
        lines: list[bytes] = []
        end = self.offset
        for line in self.file:
            if not line.endswith(b"\n") or len(lines) >= BATCH_LINES:
                break
            lines.append(line)
            end += len(line)
        if not lines and end >= size and self._follow_rotation():
            return [], self.offset  # the new file's offset, not the old file's end
        return lines, end

    def _follow_rotation(self) -> bool:
        """At the end of the file: move to the log's current file when it is another one (Envoy
        reopened it after a rotation, having flushed the old one first); True when it moved."""
        assert self.file is not None
        try:
            current = self.path.stat().st_ino
        except FileNotFoundError:
            return False
        if current == os.fstat(self.file.fileno()).st_ino:
            return False
        self.file.close()
        self.file = None
        self.inode, self.offset = current, 0
        self.commit(0)
        return True

    def close(self) -> None:
        if self.file is not None:
            self.file.close()
            self.file = None

    def commit(self, offset: int) -> None:
        self.offset = offset
        tmp = self.state_file.with_suffix(".tmp")
        tmp.write_text(json.dumps({"inode": self.inode, "offset": offset}))
        os.replace(tmp, self.state_file)

    def maybe_rotate(self, envoy_pid: int | None) -> None:
        """Rename a log past ``rotate_bytes`` that is read to its end, and have Envoy reopen it."""
        if envoy_pid is None or self.file is None:
            return
        try:
            st = self.path.stat()
        except FileNotFoundError:
            return
        if st.st_size < self.rotate_bytes or st.st_ino != self.inode or self.offset < st.st_size:
            return
        rotated = self.path.with_name(self.path.name + ".1")
        os.replace(self.path, rotated)
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(envoy_pid, signal.SIGUSR1)
        log.info("rotated %s (%d bytes)", self.path, st.st_size)


def _envoy_pid(data_dir: Path) -> int | None:
    from .procs import running

    with contextlib.suppress(OSError, ValueError, KeyError, TypeError):
        gw = json.loads((data_dir / "mesh.json").read_text())["components"]["gateway"]
        if running(gw["pid"], gw["start"]):
            return int(gw["pid"])
    return None


def _iter_rows(lines: list[bytes]) -> Iterator[tuple[Any, ...]]:
    for line in lines:
        row = parse_line(line)
        if row is not None:
            yield row


async def serve(data_dir: Path, log_path: Path, dsn: str, rotate_bytes: int = ROTATE_BYTES) -> None:
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    pool = ThreadPoolExecutor(1, thread_name_prefix="access-store")  # one store thread
    store = await loop.run_in_executor(pool, lambda: connect(dsn, MIGRATIONS))
    tailer = Tailer(log_path, rotate_bytes)
    inserted = 0

    def copy_once() -> int:
        lines, end = tailer.read()
        rows = list(_iter_rows(lines))
        if rows:
            store.insert(TABLE, rows, COLUMNS)
        if end != tailer.offset:
            tailer.commit(end)
        tailer.maybe_rotate(_envoy_pid(data_dir))
        return len(rows)

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            msg = json.loads(await reader.readline())
            if msg.get("op") == "ping":
                answer: dict[str, Any] = {"result": inserted}
            elif msg.get("op") == "query":
                filters = msg.get("filters") or {}
                answer = {"result": await loop.run_in_executor(pool, query, store, filters)}
            else:
                answer = {"error": f"unknown op {msg.get('op')!r}"}
        except ValueError as exc:
            answer = {"error": str(exc)}
        except Exception as exc:  # a store failure: the caller sees it, the server stays up
            log.exception("access query failed")
            answer = {"error": f"query failed: {type(exc).__name__}: {exc}"}
        writer.write(json.dumps(answer, default=str).encode() + b"\n")
        with contextlib.suppress(ConnectionError):
            await writer.drain()
        writer.close()

    sock = socket_path(data_dir)
    sock.unlink(missing_ok=True)
    address, fd = _unix_address(sock)
    old = os.umask(0o177)  # the socket is the owner's only
    try:
        server = await asyncio.start_unix_server(handle, path=address)
    finally:
        os.umask(old)
        if fd is not None:
            os.close(fd)
    log.info("access audit: %s -> %s, queries on %s", log_path, dsn, sock)
    try:
        while not stop.is_set():
            try:
                n = await loop.run_in_executor(pool, copy_once)
                inserted += n
            except Exception:
                log.exception("access log copy failed; trying again")
                await asyncio.sleep(1.0)
                continue
            if n < BATCH_LINES:
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(stop.wait(), POLL_S)
        # The supervisor stops the gateway before this component: its last lines are in the
        # file now.
        inserted += await loop.run_in_executor(pool, copy_once)
    finally:
        server.close()
        sock.unlink(missing_ok=True)
        tailer.close()
        await loop.run_in_executor(pool, store.close)
        pool.shutdown()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="Copy the gateway's access log into ClickHouse.")
    ap.add_argument("--log", required=True, type=Path)
    ns = ap.parse_args(argv)
    logging.basicConfig(
        level=logging.INFO,
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    data = Path(os.environ.get("TRADECORE_DATA_DIR", ".tradecore")).resolve()
    dsn = os.environ.get("TRADECORE_CLICKHOUSE_DSN") or default_dsn(data, "access")
    raw = os.environ.get("TRADECORE_ACCESS_ROTATE_BYTES", "")
    try:
        rotate = int(raw) if raw else ROTATE_BYTES
    except ValueError:
        raise SystemExit(
            f"TRADECORE_ACCESS_ROTATE_BYTES must be an integer (got {raw!r})"
        ) from None
    asyncio.run(serve(data, ns.log.resolve(), dsn, rotate))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
