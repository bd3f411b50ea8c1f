"""ClickHouse access layer: one client API (clickhouse-connect) for embedded chDB and servers.

DSNs:

* ``chdb:///abs/path``  the real ClickHouse engine in-process (chDB), data persisted at the
  path. chDB allows one process per data path: every process that stores owns its own path.
* ``chdb://memory``    an in-memory chDB instance (tests).
* ``http://user:pass@host:8123/db`` (or ``https://``)  a ClickHouse server or cluster.

Schema migrations are ordered, named SQL statements recorded in ``tradecore_migrations``;
:meth:`Store.migrate` applies the ones not yet recorded, so it is safe to run on every start.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

_DSN_RE = re.compile(r"^(chdb|https?)://", re.IGNORECASE)


@dataclass(frozen=True, slots=True)
class Migration:
    """One schema change. ``version`` orders migrations; it is never reused."""

    version: int
    name: str
    statements: tuple[str, ...]


def default_dsn(data_dir: str | Path, owner: str) -> str:
    """The embedded chDB DSN of one owner (a service) under the data directory."""
    return f"chdb://{(Path(data_dir) / 'clickhouse' / owner).resolve()}"


def _validate_dsn(dsn: str) -> str:
    if not isinstance(dsn, str) or not _DSN_RE.match(dsn):
        raise ValueError(f"dsn must start with chdb://, http:// or https:// (got {dsn!r})")
    if dsn.lower().startswith("chdb://"):
        rest = dsn[len("chdb://") :]
        if rest != "memory" and not rest.startswith("/"):
            raise ValueError(f"dsn: a chDB path must be absolute (chdb:///abs/path), got {dsn!r}")
        if rest.startswith("/"):
            Path(rest).mkdir(parents=True, exist_ok=True)
    return dsn


class Store:
    """A ClickHouse connection with migrations. Use :func:`connect` to make one."""

    MIGRATIONS_TABLE = "tradecore_migrations"

    def __init__(self, client: Any, dsn: str) -> None:
        self.client = client
        self.dsn = dsn

    @property
    def embedded(self) -> bool:
        return self.dsn.lower().startswith("chdb://")

    @property
    def chdb_path(self) -> str | None:
        """The engine location of an embedded store as ``chdb.connect`` takes it (the resolved
        data directory, or ``:memory:``), for a second handle on the same engine; ``None`` for
        a server. chDB compares locations literally, so the path is resolved the way
        clickhouse-connect resolves it for its own handle."""
        if not self.embedded:
            return None
        parsed = urlparse(self.dsn)
        return ":memory:" if parsed.netloc else os.path.realpath(unquote(parsed.path))

    def command(self, sql: str, parameters: dict[str, Any] | None = None) -> Any:
        return self.client.command(sql, parameters=parameters)

    def query_rows(
        self, sql: str, parameters: dict[str, Any] | None = None
    ) -> list[tuple[Any, ...]]:
        return [tuple(r) for r in self.client.query(sql, parameters=parameters).result_rows]

    def insert(
        self, table: str, rows: Sequence[Sequence[Any]], column_names: Sequence[str]
    ) -> None:
        self.client.insert(table, list(rows), column_names=list(column_names))

    def insert_arrow(self, table: str, arrow_table: Any) -> None:
        """Columnar insert (keeps DateTime64 nanoseconds)."""
        self.client.insert_arrow(table, arrow_table)

    def query_arrow(self, sql: str, parameters: dict[str, Any] | None = None) -> Any:
        return self.client.query_arrow(sql, parameters=parameters)

    def applied_migrations(self) -> list[int]:
        self.command(
            f"CREATE TABLE IF NOT EXISTS {self.MIGRATIONS_TABLE} "
            "(version UInt32, name String, applied_at DateTime64(3) DEFAULT now64(3)) "
            "ENGINE = MergeTree ORDER BY version"
        )
        return [
            int(r[0])
            for r in self.query_rows(
                f"SELECT version FROM {self.MIGRATIONS_TABLE} ORDER BY version"
            )
        ]

    def migrate(self, migrations: Iterable[Migration]) -> list[int]:
        """Apply the migrations not applied yet, in version order; returns those applied."""
        ordered = sorted(migrations, key=lambda m: m.version)
        versions = [m.version for m in ordered]
        if len(set(versions)) != len(versions):
            raise ValueError(f"migrations: duplicate versions in {versions}")
        done = set(self.applied_migrations())
        applied: list[int] = []
        for m in ordered:
            if m.version in done:
                continue
            for stmt in m.statements:
                self.command(stmt)
            self.insert(self.MIGRATIONS_TABLE, [(m.version, m.name)], ["version", "name"])
            applied.append(m.version)
        return applied

    def close(self) -> None:
        self.client.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def connect(dsn: str, migrations: Iterable[Migration] = ()) -> Store:
    """Open a store by DSN and apply pending migrations."""
    import clickhouse_connect

    dsn = _validate_dsn(dsn)
    client = clickhouse_connect.get_client(dsn=dsn)
    store = Store(client, dsn)
    store.migrate(migrations)
    return store


__all__ = ["Migration", "Store", "connect", "default_dsn"]
