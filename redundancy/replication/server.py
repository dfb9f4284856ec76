"""Connections to the master and the replica, at one boundary.

PyMySQL errors become this room's exceptions here (``raise ... from``).
Every statement goes through :class:`Server`, which reports it to the
:class:`SqlLog` (``-v`` prints it, passwords masked) and, for statements that
change something, skips it in a dry run. Passwords reach the command-line
tools only through a 0600 option file (:func:`option_file`), never argv.
"""

from __future__ import annotations

import configparser
import contextlib
import ipaddress
import logging
import os
import tempfile
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import pymysql
import pymysql.cursors

from redundancy.replication import sql as sqlmod
from redundancy.replication.errors import AccessDenied, ReplicationError, ServerUnavailable
from vigil.config import Secret

log = logging.getLogger(__name__)

MASK = "'********'"
_ACCESS_DENIED = {1044, 1045, 1698}
_GONE = {2002, 2003, 2005, 2006, 2013, 2055}


def _loopback(host: str) -> bool:
    """No TLS to this machine: PyMySQL's "preferred" TLS builds an SSL context per
    connection (the system CA bundle loaded, tens of ms of CPU, most of what the
    replication check costs) to protect nothing on loopback. Remote servers keep it."""
    if host in ("localhost", ""):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@dataclass(frozen=True)
class ServerParams:
    """How to reach one server. ``option_file`` wins over ``user``/``password``."""

    host: str
    port: int
    user: str = "root"
    password: Secret = field(default_factory=lambda: Secret(""))
    option_file: str = ""
    connect_timeout: float = 5.0
    read_timeout: float = 120.0
    label: str = "server"

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    def credentials(self) -> tuple[str, str]:
        """(user, password), read from the option file when one is set."""
        if not self.option_file:
            return self.user, self.password.reveal()
        parser = configparser.ConfigParser(interpolation=None, strict=False,
                                           allow_no_value=True)
        try:
            with open(self.option_file, encoding="utf-8") as fh:
                parser.read_string("[__top__]\n" + fh.read())
        except (OSError, configparser.Error) as exc:
            raise ReplicationError(f"option file {self.option_file}: {exc}") from None
        for group in ("client", "mysql", "mariadb-client"):
            if parser.has_section(group):
                user = parser.get(group, "user", fallback=self.user) or self.user
                return user, (parser.get(group, "password", fallback="") or "").strip("'\"")
        raise ReplicationError(f"option file {self.option_file} has no [client] group")

    def with_(self, **kw: Any) -> ServerParams:
        return replace(self, **kw)


@dataclass(frozen=True)
class PairParams:
    """The master and the replica that follows it."""

    master: ServerParams
    replica: ServerParams


def params_from_config(cfg: Any, replica: str | None = None) -> PairParams:
    """``[Replication]`` as two :class:`ServerParams`; ``replica`` = 'host:port' overrides."""
    s = "Replication"
    common = dict(user=cfg.get(s, "User"), password=cfg.get(s, "Password"),
                  option_file=cfg.get(s, "Option_File"),
                  connect_timeout=float(cfg.get(s, "Connect_Timeout_sec")),
                  read_timeout=float(cfg.get(s, "Query_Timeout_sec")))
    master = ServerParams(cfg.get(s, "Master_Host"), cfg.get(s, "Master_Port"),
                          label="master", **common)
    r_host, r_port = cfg.get(s, "Replica_Host"), cfg.get(s, "Replica_Port")
    if replica:
        r_host, r_port = parse_address(replica)
    return PairParams(master, ServerParams(r_host, r_port, label="replica", **common))


def parse_address(text: str) -> tuple[str, int]:
    host, sep, port = text.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ReplicationError(f"{text!r} is not host:port")
    return host, int(port)


class SqlLog:
    """Where the statements go: kept in order, and printed when verbose."""

    def __init__(self, echo: Callable[[str], None] | None = None,
                 reads: bool = False) -> None:
        self.echo = echo
        self.reads = reads          # also every status query (``-vv``)
        self.statements: list[str] = []

    def record(self, label: str, text: str, skipped: bool = False) -> None:
        line = f"[{label}] {text};" + ("  -- dry run: not executed" if skipped else "")
        self.statements.append(line)
        log.debug("sql %s", line)
        if self.echo:
            self.echo(line)


def render(conn: pymysql.Connection | None, sql: str, args: Sequence[Any] | None) -> str:
    """The statement as it would be sent, with secrets masked."""
    if not args:
        return sql
    shown = []
    for a in args:
        if isinstance(a, Secret):
            shown.append(MASK)
        elif conn is not None:
            shown.append(conn.escape(a))
        else:
            shown.append(repr(a))
    return sql % tuple(shown)


def _reveal(args: Sequence[Any] | None) -> tuple[Any, ...] | None:
    if args is None:
        return None
    return tuple(a.reveal() if isinstance(a, Secret) else a for a in args)


def translate(exc: pymysql.MySQLError, params: ServerParams) -> ReplicationError:
    code = exc.args[0] if exc.args and isinstance(exc.args[0], int) else 0
    msg = exc.args[1] if len(exc.args) > 1 else str(exc)
    if code in _ACCESS_DENIED:
        return AccessDenied(f"{params.label} {params.address}: access denied ({msg}); "
                            "check [Replication] User/Password or Option_File")
    if code in _GONE or isinstance(exc, pymysql.err.InterfaceError):
        return ServerUnavailable(f"{params.label} {params.address}: not reachable ({msg})")
    return ReplicationError(f"{params.label} {params.address}: error {code}: {msg}")


class Server:
    """One open connection, with the statement log and the dry-run switch."""

    def __init__(self, params: ServerParams, sql_log: SqlLog | None = None,
                 dry_run: bool = False) -> None:
        self.params = params
        self.sql_log = sql_log or SqlLog()
        self.dry_run = dry_run
        self.conn: pymysql.Connection | None = None
        self._flavor: sqlmod.Flavor | None = None

    @property
    def label(self) -> str:
        return self.params.label

    def connect(self) -> Server:
        user, password = self.params.credentials()
        try:
            self.conn = pymysql.connect(
                host=self.params.host, port=self.params.port, user=user, password=password,
                connect_timeout=self.params.connect_timeout,
                read_timeout=self.params.read_timeout, write_timeout=self.params.read_timeout,
                autocommit=True, charset="utf8mb4", ssl_disabled=_loopback(self.params.host))
        except pymysql.MySQLError as exc:
            raise translate(exc, self.params) from exc
        return self

    def close(self) -> None:
        if self.conn is not None:
            with contextlib.suppress(Exception):
                self.conn.close()
            self.conn = None

    def __enter__(self) -> Server:
        return self.connect() if self.conn is None else self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def flavor(self) -> sqlmod.Flavor:
        if self._flavor is None:
            self._flavor = sqlmod.parse_version(self.scalar("SELECT VERSION()"))
        return self._flavor

    def sql(self, name: str, **fmt: str) -> str:
        text = self.flavor.sql(name)
        return text.format(**fmt) if fmt else text

    # --------------------------------------------------------------- running
    def _run(self, sql: str, args: Sequence[Any] | None, change: bool,
             quiet: bool = False) -> list[dict[str, Any]]:
        if self.conn is None:
            self.connect()
        assert self.conn is not None
        if change and self.dry_run:
            self.sql_log.record(self.label, render(self.conn, sql, args), skipped=True)
            return []
        if change or not quiet or self.sql_log.reads:
            self.sql_log.record(self.label, render(self.conn, sql, args))
        try:
            with self.conn.cursor(pymysql.cursors.DictCursor) as cur:
                cur.execute(sql, _reveal(args))
                return list(cur.fetchall())
        except pymysql.MySQLError as exc:
            raise translate(exc, self.params) from exc

    def query(self, sql: str, args: Sequence[Any] | None = None,
              quiet: bool = True) -> list[dict[str, Any]]:
        """A read: runs even in a dry run; not echoed unless ``quiet=False``."""
        return self._run(sql, args, change=False, quiet=quiet)

    def scalar(self, sql: str, args: Sequence[Any] | None = None) -> Any:
        rows = self.query(sql, args)
        return next(iter(rows[0].values())) if rows else None

    def execute(self, sql: str, args: Sequence[Any] | None = None) -> list[dict[str, Any]]:
        """A change: always echoed with ``-v``; skipped in a dry run."""
        return self._run(sql, args, change=True)

    def execute_always(self, sql: str, args: Sequence[Any] | None = None) -> None:
        """Session settings that change nothing stored (``SET SESSION ...``)."""
        self._run(sql, args, change=False, quiet=False)


@contextlib.contextmanager
def option_file(params: ServerParams, tool_groups: Sequence[str] = ("client",)
                ) -> Iterator[Path]:
    """A 0600 option file with host, port, user and password for a client tool.

    Passed as ``--defaults-extra-file`` so the password never shows in ``ps``.
    Lives in a private 0700 folder and is removed when the block ends.
    """
    user, password = params.credentials()
    folder = tempfile.mkdtemp(prefix="vigil-repl-")
    path = Path(folder) / "client.cnf"
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        body = "".join(
            f"[{g}]\nhost={params.host}\nport={params.port}\nprotocol=TCP\n"
            f"user={user}\npassword=\"{_escape_option(password)}\"\n"
            for g in tool_groups)
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(body)
        yield path
    finally:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
        with contextlib.suppress(OSError):
            os.rmdir(folder)


def _escape_option(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"')
