"""Throw-away MariaDB servers for tests and benchmarks.

Each instance has its own datadir, port and socket under a temp folder and
never touches the machine's own server on 3306. The first instance
initialises a pristine datadir once (``mariadb-install-db``); later ones copy
it, which takes milliseconds instead of seconds.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import pymysql

from vigil.testing.binaries import MissingBinary
from vigil.testing.ports import free_port
from vigil.testing.reaper import die_with_parent

MARIADBD_CANDIDATES = ("/usr/sbin/mariadbd", "/usr/sbin/mysqld", "/usr/bin/mariadbd")
_TEMPLATE_LOCK = Path(tempfile.gettempdir()) / "vigil-mariadb-template.lock"


class MariaDBUnavailable(MissingBinary):
    """The MariaDB binaries are not installed (run ``make setup``)."""


def mariadbd_path() -> str:
    for p in MARIADBD_CANDIDATES:
        if os.access(p, os.X_OK):
            return p
    found = shutil.which("mariadbd") or shutil.which("mysqld")
    if found:
        return found
    raise MariaDBUnavailable("mariadbd")


def _template_dir() -> Path:
    """A pristine initialised datadir, made once per machine and reused."""
    import fcntl

    base = Path(os.environ.get("VIGIL_MARIADB_TEMPLATE",
                               Path(tempfile.gettempdir()) / "vigil-mariadb-template"))
    with open(_TEMPLATE_LOCK, "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if (base / "mysql" / "db.frm").exists() or (base / "mysql" / "global_priv.frm").exists():
            return base
        shutil.rmtree(base, ignore_errors=True)
        base.mkdir(parents=True)
        install = shutil.which("mariadb-install-db") or shutil.which("mysql_install_db")
        if not install:
            raise MariaDBUnavailable("mariadb-install-db")
        subprocess.run(
            [install, "--no-defaults", f"--datadir={base}", "--user=root",
             "--auth-root-authentication-method=normal", "--skip-test-db",
             "--skip-name-resolve"],
            check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, timeout=120)
        return base


class MariaDB:
    """One mariadbd process. ``root`` has no password and reaches it over TCP."""

    def __init__(self, name: str = "db", port: int | None = None, server_id: int = 1,
                 log_bin: bool = True, extra_args: list[str] | None = None,
                 base_dir: Path | None = None) -> None:
        self.name = name
        self.port = port or free_port()
        self.server_id = server_id
        self.log_bin = log_bin
        self.extra_args = list(extra_args or [])
        self.base = Path(base_dir or tempfile.mkdtemp(prefix=f"vigil-{name}-"))
        self.datadir = self.base / "data"
        self.socket = self.base / "mysqld.sock"
        self.log_file = self.base / "error.log"
        self.proc: subprocess.Popen[bytes] | None = None

    # -------------------------------------------------------------- lifecycle
    def init_datadir(self) -> None:
        if self.datadir.exists():
            return
        shutil.copytree(_template_dir(), self.datadir, symlinks=True)

    def args(self) -> list[str]:
        a = [
            mariadbd_path(), "--no-defaults", f"--datadir={self.datadir}",
            f"--port={self.port}", f"--socket={self.socket}", "--bind-address=127.0.0.1",
            f"--pid-file={self.base / 'mysqld.pid'}", f"--log-error={self.log_file}",
            "--user=root", f"--server-id={self.server_id}", "--skip-name-resolve",
            "--innodb-buffer-pool-size=64M", "--innodb-log-file-size=48M",
            # Throw-away instances: durability on every commit is not what
            # tests measure, and fsync per commit makes suites crawl.
            "--innodb-flush-log-at-trx-commit=2", "--sync-binlog=0",
            "--max-connections=300", "--character-set-server=utf8mb4",
            "--collation-server=utf8mb4_general_ci",
        ]
        if self.log_bin:
            a += [f"--log-bin={self.datadir / 'mysql-bin'}", "--binlog-format=ROW",
                  "--log-slave-updates=1"]
        return a + self.extra_args

    def start(self, timeout: float = 60.0) -> MariaDB:
        self.init_datadir()
        self.proc = subprocess.Popen(self.args(), stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL, start_new_session=True,
                                     preexec_fn=die_with_parent)
        deadline = time.monotonic() + timeout
        last: Exception | None = None
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"mariadbd {self.name} exited: {self.error_log_tail()}")
            try:
                with contextlib.closing(self.connect(connect_timeout=1)) as conn, \
                        conn.cursor() as cur:
                    cur.execute("SELECT @@datadir")
                    row = cur.fetchone()
                served = Path(str(row[0] if row else "")).resolve()
                if served != self.datadir.resolve():
                    # Another server holds our port: talking to it would run
                    # this test against the wrong database.
                    self.proc.kill()
                    self.proc.wait()
                    raise RuntimeError(f"mariadbd {self.name}: port {self.port} is served "
                                       f"by another server ({served})")
                return self
            except pymysql.err.OperationalError as exc:
                last = exc
                time.sleep(0.1)
        raise TimeoutError(f"mariadbd {self.name} did not accept connections: {last}")

    def stop(self, timeout: float = 30.0) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.terminate()
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()

    def kill(self) -> None:
        """SIGKILL: a crash, not a shutdown."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    def destroy(self) -> None:
        self.stop()
        shutil.rmtree(self.base, ignore_errors=True)

    def error_log_tail(self, lines: int = 20) -> str:
        try:
            return "\n".join(self.log_file.read_text(errors="replace").splitlines()[-lines:])
        except FileNotFoundError:
            return "(no error log)"

    # ------------------------------------------------------------------ use
    def connect(self, database: str | None = None, user: str = "root", password: str = "",
                connect_timeout: float = 5, autocommit: bool = True) -> pymysql.Connection:
        return pymysql.connect(host="127.0.0.1", port=self.port, user=user, password=password,
                               database=database, connect_timeout=connect_timeout,
                               autocommit=autocommit)

    def execute(self, sql: str, args: object = None, database: str | None = None) -> list[tuple]:
        with contextlib.closing(self.connect(database)) as conn, conn.cursor() as cur:
            cur.execute(sql, args)
            return list(cur.fetchall())

    def create_database(self, name: str) -> str:
        self.execute(f"CREATE DATABASE IF NOT EXISTS `{name}`")
        return name

    def url(self, database: str, user: str = "root") -> str:
        """SQLAlchemy URL without a password (root has none)."""
        return f"mysql+pymysql://{user}@127.0.0.1:{self.port}/{database}"

    def __enter__(self) -> MariaDB:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.destroy()
