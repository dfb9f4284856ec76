"""Several statements of one transaction in one database round trip.

Why: the committer's batches are a handful of statements each, and on
MariaDB each statement is a round trip during which the committer waits
for the network, the server and then the GIL (the packet loop holds it
while it decodes). bench/bench_radius.py with statement timings showed a
batch of authorizations spending about 3 ms in seven round trips, of which
the database's work was a fraction; every Access-Accept of the batch
waited for all of them. Sent together (MariaDB multi-statements), the same
statements cost one round trip.

The statements, their order and their meaning are the same on both
dialects: on MariaDB they go in one text through the driver's cursor; on
SQLite (in process, no round trip to save) one by one. Each gives back its
row count and its rows. An error stops the statements after it (MariaDB
does so itself) and is raised as SQLAlchemy's, like any statement of the
store, after the connection is invalidated if the error means it died.

Safe with multi-statements: every value is bound by the driver (escaped
client side by PyMySQL); no text from a request is ever joined into SQL.
Only the billing store's writer connections allow multi-statements
(``billing.db.engine_for_url(multi_statements=True)``).
"""

from __future__ import annotations

import contextlib
import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from sqlalchemy import exc as sa_exc
from sqlalchemy.engine import Connection

# SQLAlchemy's own text form of a DATETIME on SQLite: comparisons of these
# columns are text comparisons there, so every writer must use one format.
_SQLITE_DATETIME = "%Y-%m-%d %H:%M:%S.%f"


@dataclass
class Outcome:
    rowcount: int
    rows: Sequence[tuple[Any, ...]]


class Pipeline:
    def __init__(self, conn: Connection) -> None:
        self.conn = conn
        self.one_trip = _allows_multi_statements(conn)
        self.native = conn.dialect.supports_native_decimal
        self.marker = "?" if conn.dialect.paramstyle == "qmark" else "%s"
        self._sql: list[str] = []
        self._params: list[tuple[Any, ...]] = []

    def value(self, v: Any) -> Any:
        """A parameter as the driver takes it: SQLite has no decimal or
        datetime type, and stores them as SQLAlchemy does (float, text)."""
        if self.native:
            return v
        if isinstance(v, Decimal):
            return float(v)
        if isinstance(v, dt.datetime):
            return v.strftime(_SQLITE_DATETIME)
        return v

    def add(self, sql: str, params: Sequence[Any] = ()) -> int:
        """Queue a statement (markers: ``self.marker``); its index in ``run()``."""
        self._sql.append(sql)
        self._params.append(tuple(self.value(p) for p in params))
        return len(self._sql) - 1

    def __len__(self) -> int:
        return len(self._sql)

    def run(self) -> list[Outcome]:
        sql, params = self._sql, self._params
        self._sql, self._params = [], []
        if not sql:
            return []
        if not self.one_trip:
            out = []
            for s, p in zip(sql, params, strict=True):
                r = self.conn.exec_driver_sql(s, p)
                rows = r.fetchall() if r.returns_rows else []
                out.append(Outcome(r.rowcount, [tuple(x) for x in rows]))
            return out
        return self._one_trip(sql, params)

    def _one_trip(self, sql: list[str], params: list[tuple[Any, ...]]) -> list[Outcome]:
        text = ";\n".join(sql)
        flat = tuple(p for ps in params for p in ps)
        fairy = self.conn.connection
        raw = fairy.dbapi_connection
        assert raw is not None
        cur = raw.cursor()
        out: list[Outcome] = []
        try:
            cur.execute(text, flat)
            for k in range(len(sql)):
                if k and not cur.nextset():
                    raise RuntimeError(f"statement {k} of a pipeline gave no result")
                out.append(Outcome(cur.rowcount, cur.fetchall() if cur.description else ()))
        except self.conn.dialect.loaded_dbapi.Error as e:
            gone = self.conn.dialect.is_disconnect(e, raw, cur)
            if gone:
                self.conn.invalidate(e)
            raise sa_exc.DBAPIError.instance(
                sql[len(out)] if len(out) < len(sql) else text, None, e,
                self.conn.dialect.loaded_dbapi.Error, connection_invalidated=gone) from e
        finally:
            # the error above, if any, is the one that matters
            with contextlib.suppress(Exception):
                cur.close()
        return out


def _allows_multi_statements(conn: Connection) -> bool:
    if conn.dialect.name not in ("mysql", "mariadb"):
        return False
    raw = conn.connection.dbapi_connection
    flag = getattr(raw, "client_flag", 0)
    from pymysql.constants import CLIENT

    return bool(flag & CLIENT.MULTI_STATEMENTS)


def markers(marker: str, n: int) -> str:
    return ", ".join([marker] * n)


def rows_values(marker: str, n_rows: int, n_cols: int) -> str:
    """``(?, ?), (?, ?)``: the VALUES of a multi-row INSERT."""
    one = f"({markers(marker, n_cols)})"
    return ", ".join([one] * n_rows)
