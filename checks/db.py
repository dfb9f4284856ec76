"""The database plugins' one way in: an SQLAlchemy connection with explicit timeouts.

The URL is ``-U`` or ``[Master] URL`` (a relative sqlite path lives in
``[Site] State_Dir``, as for the engine); the password always comes from
``[Master] Password``, never from the command line. Driver errors are
translated here, at one boundary: cannot connect / lost connection is
:class:`TargetDown` (CRITICAL), anything else :class:`PluginError` (UNKNOWN).
"""

from __future__ import annotations

import argparse
import contextlib
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from checks.plugin import Context, PluginError, TargetDown


def add_db_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-U", "--url", metavar="URL",
                        help="SQLAlchemy URL without password (default [Master] URL; the "
                             "password is [Master] Password)")


def database_url(ctx: Context, url_text: str | None = None) -> Any:
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    text = url_text or ctx.args.url or ctx.option("Master", "URL")
    try:
        url = make_url(text)
    except ArgumentError:
        raise PluginError(f"{text!r} is not an SQLAlchemy URL") from None
    if url.password:
        raise PluginError("put the password in [Master] Password, not in the URL "
                          "(command lines show in ps)")
    backend = url.get_backend_name()
    if backend == "sqlite":
        db = url.database or ""
        if db and db != ":memory:" and not Path(db).is_absolute():
            url = url.set(database=str(ctx.site_state_dir() / db))
        return url
    if backend not in ("mysql", "mariadb"):
        raise PluginError(f"database {backend!r} is not supported (sqlite or mysql+pymysql)")
    url = url.set(drivername="mysql+pymysql")
    if not ctx.args.url and ctx.option("Master", "User", ""):
        url = url.set(username=ctx.option("Master", "User"))
    password = ctx.option("Master", "Password")
    if password:
        url = url.set(password=password.reveal())
    return url


def where(url: Any) -> str:
    if url.get_backend_name() == "sqlite":
        return f"sqlite {url.database}"
    return f"{url.host or 'localhost'}:{url.port or 3306}/{url.database or ''}".rstrip("/")


@contextlib.contextmanager
def connect(ctx: Context, url_text: str | None = None) -> Iterator[Any]:
    """A connection that gives up within the plugin's time; errors translated."""
    from sqlalchemy import create_engine
    from sqlalchemy import exc as sa_exc
    from sqlalchemy.pool import NullPool

    url = database_url(ctx, url_text)
    if url.get_backend_name() == "sqlite":
        if not Path(url.database).exists():
            raise TargetDown(f"no database at {url.database}")
        # read-only: a monitoring query must never take the engine's write lock
        engine = create_engine(f"sqlite:///file:{url.database}?mode=ro&uri=true",
                               poolclass=NullPool,
                               connect_args={"timeout": ctx.remaining(5)})
    else:
        left = max(1, int(ctx.remaining()))
        engine = create_engine(url, poolclass=NullPool, connect_args={
            "connect_timeout": left, "read_timeout": left, "write_timeout": left})
    try:
        with engine.connect() as conn:
            yield conn
    except (sa_exc.OperationalError, sa_exc.InterfaceError) as exc:
        if _is_unreachable(exc):
            raise TargetDown(f"database {where(url)}: {_short(exc)}") from None
        raise PluginError(f"database {where(url)}: {_short(exc)}") from None
    except sa_exc.SQLAlchemyError as exc:
        raise PluginError(f"database {where(url)}: {_short(exc)}") from None
    finally:
        engine.dispose()


# MySQL client errors meaning "the server did not answer or went away"
_UNREACHABLE = {2002, 2003, 2005, 2006, 2013, 2055, 1040, 1053}


def _is_unreachable(exc: Any) -> bool:
    orig = getattr(exc, "orig", None)
    args = getattr(orig, "args", ())
    if args and isinstance(args[0], int):
        return args[0] in _UNREACHABLE
    text = str(orig or exc).lower()
    return "unable to open" in text or "database is locked" in text


def _short(exc: Any) -> str:
    orig = getattr(exc, "orig", None) or exc
    return " ".join(str(orig).split())[:200]


def timed(conn: Any, sql: str, params: dict[str, Any] | None = None) -> tuple[list[Any], float]:
    from sqlalchemy import text

    start = time.monotonic()
    rows = list(conn.execute(text(sql), params or {}))
    return rows, time.monotonic() - start


def require_mysql(conn: Any, what: str) -> None:
    if conn.dialect.name != "mysql":
        raise PluginError(f"{what} needs MySQL/MariaDB; this database is {conn.dialect.name}")


def utc_since(minutes: float) -> Any:
    """The naive UTC datetime ``minutes`` ago: how the billing tables store times."""
    import datetime as dt

    return dt.datetime.now(dt.UTC).replace(tzinfo=None) - dt.timedelta(minutes=minutes)
