"""A real MariaDB master and replica (GTID, strict mode) for the replication tests.

Helpers live here (``tests.redundancy.replication_pair``); conftest.py only
re-exports the fixture. Both servers take free ports: never the source's 3307,
which another test run or a real replica on this machine may hold.
"""

from __future__ import annotations

import contextlib
import shutil
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pymysql
import pytest

from vigil.testing.mariadb import MariaDB
from vigil.testing.ports import free_port
from vigil.testing.wait import wait_until

REPL_PASSWORD = "repl-secret-9"
GTID_ARGS = ["--gtid-strict-mode=1", "--slave-net-timeout=5"]


class Pair:
    def __init__(self, master: MariaDB, replica: MariaDB, base: Path) -> None:
        self.master = master
        self.replica = replica
        self.base = base

    def start_replication(self) -> None:
        self.replica.execute(
            "CHANGE MASTER TO MASTER_HOST='127.0.0.1', MASTER_PORT=%s, MASTER_USER='repl', "
            "MASTER_PASSWORD=%s, MASTER_USE_GTID=slave_pos", (self.master.port, REPL_PASSWORD))
        self.replica.execute("START SLAVE")
        self.wait_caught_up()

    def wait_caught_up(self, timeout: float = 30) -> None:
        pos = self.master.execute("SELECT @@gtid_binlog_pos")[0][0]
        got = self.replica.execute("SELECT MASTER_GTID_WAIT(%s, %s)", (pos, timeout))[0][0]
        assert got == 0, f"replica did not reach {pos}: {self.slave_status()}"

    def slave_status(self) -> dict:
        with contextlib.closing(self.replica.connect()) as c, \
                c.cursor(pymysql.cursors.DictCursor) as cur:
            cur.execute("SHOW SLAVE STATUS")
            return cur.fetchone() or {}

    def wait_sql_error(self, timeout: float = 10) -> dict:
        def broken() -> dict | None:
            st = self.slave_status()
            return st if st.get("Last_SQL_Errno") or st.get("Last_IO_Errno") else None

        return wait_until(broken, timeout, 0.1, what="replication broke")

    def on_replica_unlogged(self, sql: str, args: object = None) -> None:
        with contextlib.closing(self.replica.connect()) as c, c.cursor() as cur:
            cur.execute("SET SESSION sql_log_bin=0")
            cur.execute(sql, args)

    def checksums(self, db: MariaDB) -> dict[str, int]:
        rows = db.execute("SELECT CONCAT(TABLE_SCHEMA, '.', TABLE_NAME) FROM "
                          "information_schema.TABLES WHERE TABLE_SCHEMA IN ('app', 'vigil')")
        names = ", ".join(r[0] for r in rows)
        return {t: c for t, c in db.execute(f"CHECKSUM TABLE {names}")}

    def assert_equal(self) -> None:
        self.wait_caught_up()
        ours, theirs = self.checksums(self.master), self.checksums(self.replica)
        assert ours == theirs
        assert "app.t" in ours

    def conf(self, smtp_port: int | None = None, **extra: str) -> Path:
        """A vigil.conf for this pair (plus ``extra`` [Replication] options)."""
        opts = {"Master_Host": "127.0.0.1", "Master_Port": str(self.master.port),
                "Replica_Host": "127.0.0.1", "Replica_Port": str(self.replica.port),
                "User": "root", "Password": "", "Replication_User": "repl",
                "Replication_Password": REPL_PASSWORD, "Disk_Reserve_MB": "0",
                "Catch_Up_Timeout_sec": "60"}
        opts.update(extra)
        state = self.base / "state"
        state.mkdir(exist_ok=True)
        text = (f"[Site]\nState_Dir={state}\nHost_Name=vigil-test\n\n"
                "[Global]\nlast_resort_email=oncall@example.com\n"
                "email_header_from=vigil@example.com\n\n"
                f"[Email]\nSMTP_Host=127.0.0.1\nSMTP_Port={smtp_port or free_port()}\n"
                "SMTP_Timeout_sec=2\n\n[Replication]\n"
                + "".join(f"{k}={v}\n" for k, v in opts.items()))
        path = self.base / "vigil.conf"
        path.write_text(text)
        return path


class Writer:
    """Keeps inserting one row per commit on the master until stopped."""

    def __init__(self, master: MariaDB, pause: float = 0.005) -> None:
        self.master = master
        self.pause = pause
        self.rows = 0
        self.errors: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        conn = None
        while not self._stop.is_set():
            try:
                if conn is None:
                    conn = self.master.connect()
                with conn.cursor() as cur:
                    cur.execute("INSERT INTO app.t (v, n) VALUES ('writer', %s)", (self.rows,))
                self.rows += 1
            except pymysql.MySQLError as exc:
                self.errors.append(str(exc))
                conn = None
                time.sleep(0.1)  # back off before reconnecting (the master may be restarting)
            time.sleep(self.pause)  # the writer's pace: steady load while the repair runs
        if conn is not None:
            conn.close()

    def __enter__(self) -> Writer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(10)


@pytest.fixture
def pair(tmp_path: Path) -> Iterator[Pair]:
    master = MariaDB("repl-master", server_id=1, extra_args=GTID_ARGS)
    replica = MariaDB("repl-replica", server_id=2,
                      extra_args=GTID_ARGS + ["--read-only=1"])
    master.start()
    replica.start()
    try:
        master.execute("CREATE USER 'repl'@'%%' IDENTIFIED BY %s", (REPL_PASSWORD,))
        master.execute("GRANT REPLICATION SLAVE ON *.* TO 'repl'@'%'")
        master.execute("CREATE DATABASE app")
        master.execute("CREATE TABLE app.t (id INT NOT NULL AUTO_INCREMENT PRIMARY KEY, "
                       "v VARCHAR(40) NOT NULL, n INT NULL, UNIQUE KEY uk_v_n (v, n))")
        master.execute("CREATE TABLE app.accounts (account_id VARCHAR(32) PRIMARY KEY, "
                       "balance DECIMAL(12,5) NOT NULL)")
        for i in range(20):
            master.execute("INSERT INTO app.t (v, n) VALUES ('seed', %s)", (i,))
            master.execute("INSERT INTO app.accounts VALUES (%s, %s)", (f"acc{i}", i * 1.5))
        p = Pair(master, replica, tmp_path)
        p.start_replication()
        yield p
    finally:
        replica.destroy()
        master.destroy()


def wipe_datadir(db: MariaDB) -> None:
    """Stop the server, remove its datadir, start it again empty (as a fresh install)."""
    db.stop()
    shutil.rmtree(db.datadir)
    db.start()
