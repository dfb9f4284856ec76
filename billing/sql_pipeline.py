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

Safe with multi-statements: every value is escaped by the driver's own
``escape`` (``bound``, what PyMySQL does inside ``execute``); no text from
a request is ever joined into SQL unescaped.
Only the billing store's writer connections allow multi-statements
(``billing.db.engine_for_url(multi_statements=True)``).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import re
from collections.abc import Callable, Hashable, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from functools import lru_cache
from typing import Any

from sqlalchemy import exc as sa_exc
from sqlalchemy.engine import Connection
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.expression import ClauseElement, Executable

_NAMED_MARKER = re.compile(r"%\(([^)]+)\)s")

# add_prepared's texts by (dialect, shape): a few shapes, one per batch size.
_PREPARED: dict[tuple[str, Hashable], str] = {}
MAX_PREPARED = 1024

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
        self._sql: list[str | Executable] = []
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

    def add_core(self, stmt: Executable) -> int:
        """Queue a SQLAlchemy Core statement. On MariaDB it is compiled to
        text here (its values bound by the driver); on SQLite it is executed
        as it is, so its results keep their types (SQLite keeps money as
        floats and times as text)."""
        if not self.one_trip:
            self._sql.append(stmt)
            self._params.append(())
            return len(self._sql) - 1
        sql, values = self._compiled(stmt)
        return self.add(sql, values)

    def add_prepared(self, shape: Hashable, build: Callable[[Sequence[Any]], Executable],
                     params: Sequence[Any]) -> int:
        """Queue ``build(params)``, a Core statement whose parameters are
        exactly ``params`` in order and whose text depends on nothing but
        ``shape`` (say, the length of an IN list). On MariaDB its text is
        compiled once per shape and kept: compiling a SELECT for every
        batch was a tenth of the committer's CPU for Stops (py-spy,
        bench/bench_engine_cpu.py). On SQLite it goes as ``add_core``."""
        if not self.one_trip:
            return self.add_core(build(params))
        key = (self.conn.dialect.name, shape)
        sql = _PREPARED.get(key)
        if sql is None:
            sql, values = self._compiled(build(params))
            if list(values) != list(params):
                raise ValueError(f"statement of shape {shape!r} does not bind exactly "
                                 "its parameters in order")
            if len(_PREPARED) < MAX_PREPARED:
                _PREPARED[key] = sql
        return self.add(sql, params)

    def _compiled(self, stmt: Executable) -> tuple[str, list[Any]]:
        """Text with this pipeline's markers, and its values in their order."""
        assert isinstance(stmt, ClauseElement)
        compiled = stmt.compile(dialect=self.conn.dialect,
                                compile_kwargs={"render_postcompile": True})
        assert isinstance(compiled, SQLCompiler)
        values = compiled.construct_params() or {}
        if compiled.positiontup is not None:
            return compiled.string, [values[n] for n in compiled.positiontup]
        # PyMySQL's dialect binds by name (%(name)s); statements of one text
        # are bound together, by position
        names: list[str] = []

        def positional(found: re.Match[str]) -> str:
            names.append(found.group(1))
            return self.marker

        sql = _NAMED_MARKER.sub(positional, compiled.string)
        return sql, [values[n] for n in names]

    def add_rows(self, table: str, rows: Sequence[Mapping[str, Any]], ignore: str = "") -> int:
        """A multi-row INSERT of ``rows`` (dicts with the same keys);
        ``ignore``: the dialect's word for INSERT IGNORE, or empty."""
        columns = tuple(rows[0])
        return self.add(insert_sql(self.marker, table, columns, len(rows), ignore),
                        [row[c] for row in rows for c in columns])

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
                r = self.conn.exec_driver_sql(s, p) if isinstance(s, str) else \
                    self.conn.execute(s)
                rows = r.fetchall() if r.returns_rows else []
                out.append(Outcome(r.rowcount, [tuple(x) for x in rows]))
            return out
        return self._one_trip(sql, params)

    def _one_trip(self, sql: list[str | Executable], params: list[tuple[Any, ...]]
                  ) -> list[Outcome]:
        text = ";\n".join(str(x) for x in sql)
        flat = tuple(p for ps in params for p in ps)
        fairy = self.conn.connection
        raw = fairy.dbapi_connection
        assert raw is not None
        cur = raw.cursor()
        out: list[Outcome] = []
        try:
            cur.execute(text % bound(raw, flat))
            for k in range(len(sql)):
                if k and not cur.nextset():
                    raise RuntimeError(f"statement {k} of a pipeline gave no result")
                out.append(Outcome(cur.rowcount, cur.fetchall() if cur.description else ()))
        except self.conn.dialect.loaded_dbapi.Error as e:
            gone = self.conn.dialect.is_disconnect(e, raw, cur)
            if gone:
                self.conn.invalidate(e)
            raise sa_exc.DBAPIError.instance(
                str(sql[len(out)]) if len(out) < len(sql) else text, None, e,
                self.conn.dialect.loaded_dbapi.Error, connection_invalidated=gone) from e
        finally:
            # the error above, if any, is the one that matters
            with contextlib.suppress(Exception):
                cur.close()
        return out


def bound(raw: Any, params: Sequence[Any]) -> tuple[str, ...]:
    """``params`` as SQL literals, each escaped by the driver itself
    (PyMySQL's ``escape``, what ``cursor.execute(text, params)`` does).

    Why not leave it to ``execute``: a batch of 64 reservations has over a
    thousand values, most of them repeated (the batch's time, the leg, the
    gateway, the customer), and the driver's per-value type dispatch was a
    tenth of the committer's CPU (py-spy, bench/bench_radius.py). Each
    distinct value is escaped once per batch here. The key has the type, so
    that ``1``, ``True`` and ``1.0`` keep their own literals."""
    seen: dict[tuple[type, Any], str] = {}
    strs: dict[str, str] = {}
    times: dict[dt.datetime, str] = {}
    out: list[str] = []
    append = out.append
    literal = raw.escape
    # The three types of nearly every value first, each with its own table
    # (no key tuple to build): a reservation row is 16 values, a batch 64 rows.
    for p in params:
        t = type(p)
        if t is str:
            lit = strs.get(p)
            if lit is None:
                lit = strs[p] = literal(p)
            append(lit)
        elif t is int:
            append(str(p))  # PyMySQL's escape_int
        elif p is None:
            append("NULL")
        elif t is dt.datetime and p.tzinfo is None:
            # PyMySQL's escape_datetime, the text isoformat gives a naive
            # datetime, at a fifth of the cost: a batch of Stops has a few
            # distinct times per record (a twentieth of the committer's CPU)
            lit = times.get(p)
            if lit is None:
                lit = times[p] = f"'{p.isoformat(' ')}'"
            append(lit)
        elif t is float or t is Decimal:
            # equal is not the same literal here (0.0 and -0.0, Decimal 1.0
            # and 1.00): each is escaped as it is, as the driver would
            append(literal(p))
        else:
            key = (t, p)
            try:
                lit = seen.get(key)
            except TypeError:  # unhashable: escaped as it is
                append(literal(p))
                continue
            if lit is None:
                lit = seen[key] = literal(p)
            append(lit)
    return tuple(out)


def _allows_multi_statements(conn: Connection) -> bool:
    if conn.dialect.name not in ("mysql", "mariadb"):
        return False
    raw = conn.connection.dbapi_connection
    flag = getattr(raw, "client_flag", 0)
    from pymysql.constants import CLIENT

    return bool(flag & CLIENT.MULTI_STATEMENTS)


def markers(marker: str, n: int) -> str:
    return ", ".join([marker] * n)


@lru_cache(maxsize=1024)
def insert_sql(marker: str, table: str, columns: tuple[str, ...], n_rows: int,
               ignore: str = "") -> str:
    one = f"({markers(marker, len(columns))})"
    return (f"INSERT {ignore + ' ' if ignore else ''}INTO {table} ({', '.join(columns)}) "
            f"VALUES {', '.join([one] * n_rows)}")
