"""The billing database: engine set-up and error translation.

SQLite (a file in ``[Site] State_Dir``) is the embedded default; MariaDB or
MySQL through PyMySQL in production. Database and driver errors are turned
into :class:`DatabaseUnavailable` / :class:`DatabaseError` here, at one
boundary, keeping the cause.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, event
from sqlalchemy.engine import URL, Engine, make_url
from sqlalchemy.pool import NullPool

from vigil.config import Config

log = logging.getLogger(__name__)


class DatabaseError(Exception):
    """The billing database refused an operation."""


class DatabaseUnavailable(DatabaseError):
    """The billing database cannot be reached (gone, down, timing out)."""


def database_url(cfg: Config) -> URL:
    url = make_url(cfg.get("Master", "URL"))
    if url.get_backend_name() == "sqlite":
        db = url.database or "billing.db"
        if db != ":memory:" and not Path(db).is_absolute():
            state = Path(cfg.get("Site", "State_Dir"))
            if not state.is_absolute() and not cfg.source.startswith("<"):
                state = Path(cfg.source).resolve().parent / state
            db = str(state / db)
        return url.set(database=db)
    if url.drivername in ("mysql", "mariadb"):
        url = url.set(drivername="mysql+pymysql")
    user = cfg.get("Master", "User")
    if user:
        url = url.set(username=user)
    password = cfg.get("Master", "Password")
    if password:
        url = url.set(password=password.reveal())
    return url


def safe_url(url: URL) -> str:
    return url.render_as_string(hide_password=True)


def make_engine(cfg: Config, **kw: Any) -> Engine:
    """``pre_ping=False`` for the RADIUS engine: a ping is a round trip per
    statement; a connection that died is found by the statement itself,
    which then fails like any database error (no reply, the gateway retries)."""
    url = database_url(cfg)
    return engine_for_url(url, connect_timeout=cfg.get("Master", "Connect_Timeout_sec"),
                          pool_size=cfg.get("Master", "Pool_Size"),
                          query_timeout=cfg.get("Master", "Query_Timeout_sec"),
                          echo=cfg.get("Global", "SQL_Trace"), **kw)


def engine_for_url(url: URL | str, connect_timeout: int = 5, pool_size: int = 10,
                   echo: bool = False, query_timeout: int = 30, pre_ping: bool = True,
                   multi_statements: bool = False, **kw: Any) -> Engine:
    """``multi_statements``: MariaDB connections that accept several
    statements in one text (billing.sql_pipeline, the RADIUS engine's
    committer); off elsewhere, so that no other code can send a stacked
    statement even by mistake."""
    url = make_url(url)
    if url.get_backend_name() == "sqlite":
        if url.database and url.database != ":memory:":
            Path(url.database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, echo=echo, connect_args={"timeout": 30},
                               poolclass=NullPool if kw.pop("nullpool", False) else None, **kw)

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_conn: Any, _rec: Any) -> None:
            cur = dbapi_conn.cursor()
            # WAL lets readers (reports, plugins) run while the engine writes;
            # synchronous=FULL because an acknowledged accounting must survive
            # a power cut.
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=FULL")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute("PRAGMA busy_timeout=30000")
            cur.close()

        @event.listens_for(engine, "begin")
        def _sqlite_begin(conn: Any) -> None:
            # Writers take the write lock at BEGIN: two writers then queue
            # instead of failing on lock upgrade. Readers that say so
            # (execution option sqlite_read_only) do not, so that the engine's
            # look-ups never wait behind the committer.
            if conn.get_execution_options().get("sqlite_read_only"):
                conn.exec_driver_sql("BEGIN")
            else:
                conn.exec_driver_sql("BEGIN IMMEDIATE")

        # pysqlite's own transaction handling must be off for the above to work
        @event.listens_for(engine, "connect")
        def _sqlite_autocommit(dbapi_conn: Any, _rec: Any) -> None:
            dbapi_conn.isolation_level = None

        return engine
    if url.drivername in ("mysql", "mariadb"):
        url = url.set(drivername="mysql+pymysql")
    from pymysql.constants import CLIENT

    from billing import pymysql_tls

    # Passing client_flag replaces SQLAlchemy's own, which has FOUND_ROWS:
    # the conditional UPDATEs count matched rows, not changed ones.
    flags = CLIENT.FOUND_ROWS | (CLIENT.MULTI_STATEMENTS if multi_statements else 0)
    engine = create_engine(
        url, echo=echo, pool_pre_ping=pre_ping, pool_size=pool_size, max_overflow=pool_size,
        pool_recycle=3600, isolation_level="READ COMMITTED",
        # Every statement has a bound: a hung server costs a request its
        # answer (the gateway fails over), never a thread forever.
        pool_timeout=query_timeout,
        connect_args={"connect_timeout": connect_timeout, "read_timeout": query_timeout,
                      "write_timeout": query_timeout, "charset": "utf8mb4",
                      "client_flag": flags}, **kw)
    # one TLS context for every connection of the process (billing/pymysql_tls.py)
    event.listen(engine, "do_connect", pymysql_tls.connect)
    return engine


def is_unavailable(exc: BaseException) -> bool:
    """Whether an error means the database went away (rather than bad data)."""
    from sqlalchemy import exc as sa_exc

    if isinstance(exc, sa_exc.DBAPIError) and exc.connection_invalidated:
        return True
    if isinstance(exc, sa_exc.OperationalError | sa_exc.InterfaceError | sa_exc.TimeoutError):
        return True
    return isinstance(exc, OSError | ConnectionError)
