"""The database plugins' one way in: a DB-API connection with explicit timeouts.

The URL is ``-U`` or ``[Master] URL``, written as an SQLAlchemy URL
(``mysql+pymysql://user@host:port/db`` or ``sqlite:///billing.db``, a relative
sqlite path living in ``[Site] State_Dir`` as for the engine); the password
always comes from ``[Master] Password``, never from the command line.

Plugins talk to PyMySQL / sqlite3 directly rather than through an SQLAlchemy
engine: importing SQLAlchemy costs ~200 ms of CPU per run, which is most of a
database plugin's cost when every server runs them once a minute
(bench/bench_checks.py). Their queries are a few lines of portable SQL.

Driver errors are translated here, at one boundary: cannot connect / lost
connection is :class:`TargetDown` (CRITICAL), anything else
:class:`PluginError` (UNKNOWN).
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from checks.plugin import Context, PluginError, TargetDown

# MySQL errors meaning "the server did not answer, went away or is full"
_UNREACHABLE = {2002, 2003, 2005, 2006, 2013, 2055, 1040, 1053}
_PARAM = re.compile(r":([A-Za-z_]\w*)")


def add_db_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-U", "--url", metavar="URL",
                        help="database URL without password, SQLAlchemy style (default "
                             "[Master] URL; the password is [Master] Password)")


@dataclass(frozen=True)
class DbUrl:
    backend: str            # mysql | sqlite
    host: str = ""
    port: int = 3306
    user: str = ""
    password: str = ""
    database: str = ""
    unix_socket: str = ""

    def __str__(self) -> str:
        if self.backend == "sqlite":
            return f"sqlite {self.database}"
        return f"{self.host}:{self.port}/{self.database}".rstrip("/")


def parse_url(text: str) -> DbUrl:
    """An SQLAlchemy-style URL; raises PluginError saying what is wrong."""
    m = re.match(r"^([a-z][a-z0-9]*)(\+[a-z0-9_]+)?://(.*)$", text.strip())
    if not m:
        raise PluginError(f"{text!r} is not a database URL (sqlite:///path or "
                          "mysql+pymysql://user@host/db)")
    backend, rest = m.group(1), m.group(3)
    if backend == "sqlite":
        # sqlite:///relative.db  and  sqlite:////absolute/path.db
        if not rest.startswith("/"):
            raise PluginError(f"{text!r}: sqlite URLs are sqlite:///path")
        return DbUrl("sqlite", database=unquote(rest[1:].split("?")[0]))
    if backend not in ("mysql", "mariadb"):
        raise PluginError(f"database {backend!r} is not supported (sqlite or mysql+pymysql)")
    parts = urlsplit("//" + rest)
    try:
        port = parts.port or 3306
    except ValueError:
        raise PluginError(f"{text!r}: bad port") from None
    if parts.password:
        raise PluginError("put the password in [Master] Password, not in the URL "
                          "(command lines show in ps)")
    query = parse_qs(parts.query)
    return DbUrl("mysql", host=parts.hostname or "localhost", port=port,
                 user=unquote(parts.username or ""), database=unquote(parts.path.lstrip("/")),
                 unix_socket=(query.get("unix_socket") or [""])[0])


def master_url_text(ctx: Context) -> str:
    """``[Master] URL`` as written (environment > file > default).

    Not through ``cfg.get``: its converter imports SQLAlchemy (~200 ms of CPU
    per run) only to validate; :func:`parse_url` validates it here instead.
    """
    import os

    from vigil.config import lookup

    raw = ctx.config().raw  # loading the config declares every option
    opt = lookup("Master", "URL")
    if opt.env_name in os.environ:
        return os.environ[opt.env_name]
    for section in raw.sections():
        if section.lower() == "master" and raw.has_option(section, "URL"):
            return raw.get(section, "URL")
    return opt.default or ""


def database_url(ctx: Context, url_text: str | None = None) -> DbUrl:
    text = url_text or ctx.args.url or master_url_text(ctx)
    url = parse_url(text)
    if url.backend == "sqlite":
        db = url.database
        if db and db != ":memory:" and not Path(db).is_absolute():
            url = DbUrl("sqlite", database=str(ctx.site_state_dir() / db))
        return url
    user = url.user
    password = ctx.option("Master", "Password")
    if not url_text and not ctx.args.url and ctx.option("Checks", "DB_User", ""):
        # the plugins' own read-only account (all a nagios-run plugin is given)
        user, password = ctx.option("Checks", "DB_User"), ctx.option("Checks", "DB_Password")
    elif not url_text and not ctx.args.url and ctx.option("Master", "User", ""):
        user = ctx.option("Master", "User")
    return DbUrl("mysql", url.host, url.port, user, password.reveal() if password else "",
                 url.database, url.unix_socket)


def _local(url: DbUrl) -> bool:
    """A unix socket or loopback: no TLS. PyMySQL otherwise tries TLS ("preferred",
    unverified) and builds an SSL context for it, loading the system CA bundle: about
    90 ms of CPU per run, most of what a database check costs, to protect nothing on
    this machine. A remote server keeps PyMySQL's default."""
    import ipaddress

    if url.unix_socket or url.host in ("localhost", ""):
        return True
    try:
        return ipaddress.ip_address(url.host).is_loopback
    except ValueError:
        return False


def where(url: DbUrl) -> str:
    return str(url)


class Connection:
    """The few things the plugins do with a database, the same on both backends."""

    def __init__(self, raw: Any, dialect: str) -> None:
        self.raw = raw
        self.dialect = dialect  # mysql | sqlite

    def query(self, sql: str, params: dict[str, Any] | None = None) -> list[tuple[Any, ...]]:
        cur = self.raw.cursor()
        try:
            if self.dialect == "mysql":
                cur.execute(_PARAM.sub(r"%(\1)s", sql), params or None)
            else:
                cur.execute(sql, {k: _sqlite_value(v) for k, v in (params or {}).items()})
            return [tuple(r) for r in cur.fetchall()]
        finally:
            cur.close()

    def dicts(self, sql: str) -> list[dict[str, Any]]:
        cur = self.raw.cursor()
        try:
            cur.execute(sql)
            names = [d[0] for d in cur.description or ()]
            return [dict(zip(names, row, strict=True)) for row in cur.fetchall()]
        finally:
            cur.close()


def _sqlite_value(v: Any) -> Any:
    # the billing tables hold naive UTC times as SQLAlchemy writes them to SQLite
    if isinstance(v, dt.datetime):
        return v.strftime("%Y-%m-%d %H:%M:%S.%f")
    return v


@contextlib.contextmanager
def connect(ctx: Context, url_text: str | None = None) -> Iterator[Connection]:
    """A connection that gives up within the plugin's time; errors translated."""
    url = database_url(ctx, url_text)
    if url.backend == "sqlite":
        with _sqlite(ctx, url) as conn:
            yield conn
        return
    import pymysql

    left = max(1, int(ctx.remaining()))
    try:
        raw = pymysql.connect(host=url.host, port=url.port, user=url.user,
                              password=url.password, database=url.database or None,
                              unix_socket=url.unix_socket or None, connect_timeout=left,
                              read_timeout=left, write_timeout=left, autocommit=True,
                              charset="utf8mb4", ssl_disabled=_local(url))
    except pymysql.MySQLError as exc:
        raise _translate(exc, url) from None
    try:
        yield Connection(raw, "mysql")
    except pymysql.MySQLError as exc:
        raise _translate(exc, url) from None
    finally:
        with contextlib.suppress(Exception):
            raw.close()


@contextlib.contextmanager
def _sqlite(ctx: Context, url: DbUrl) -> Iterator[Connection]:
    import sqlite3

    if not Path(url.database).exists():
        raise TargetDown(f"no database at {url.database}")
    try:
        # read-only: a monitoring query must never take the engine's write lock
        raw = sqlite3.connect(f"file:{url.database}?mode=ro", uri=True,
                              timeout=ctx.remaining(5))
    except sqlite3.Error as exc:
        raise TargetDown(f"{url}: {exc}") from None
    try:
        yield Connection(raw, "sqlite")
    except sqlite3.OperationalError as exc:
        text = str(exc)
        if "locked" in text or "unable to open" in text or "disk I/O" in text:
            raise TargetDown(f"{url}: {text}") from None
        raise PluginError(f"{url}: {text}") from None
    except sqlite3.Error as exc:
        raise PluginError(f"{url}: {exc}") from None
    finally:
        raw.close()


def _translate(exc: Exception, url: DbUrl) -> Exception:
    code = exc.args[0] if exc.args and isinstance(exc.args[0], int) else 0
    text = " ".join(str(exc.args[1] if len(exc.args) > 1 else exc).split())[:200]
    if code in _UNREACHABLE or isinstance(exc, TimeoutError | OSError):
        return TargetDown(f"database {url}: ({code}) {text}")
    return PluginError(f"database {url}: ({code}) {text}")


def timed(conn: Connection, sql: str, params: dict[str, Any] | None = None
          ) -> tuple[list[tuple[Any, ...]], float]:
    start = time.monotonic()
    rows = conn.query(sql, params)
    return rows, time.monotonic() - start


def require_mysql(conn: Connection, what: str) -> None:
    if conn.dialect != "mysql":
        raise PluginError(f"{what} needs MySQL/MariaDB; this database is {conn.dialect}")


def utc_since(minutes: float) -> dt.datetime:
    """The naive UTC datetime ``minutes`` ago: how the billing tables store times."""
    return dt.datetime.now(dt.UTC).replace(tzinfo=None) - dt.timedelta(minutes=minutes)
