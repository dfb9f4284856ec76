"""The replication plugin against a real MariaDB master + replica pair."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.checks.checks_fixtures import run_check, write_config
from vigil.testing.mariadb import MariaDB
from vigil.testing.wait import wait_until

pytestmark = pytest.mark.integration  # a throw-away MariaDB pair or server


@contextlib.contextmanager
def replicating(name: str, server_id: int) -> Iterator[tuple[MariaDB, MariaDB]]:
    """A master (``server_id``) and a replica (the next id) following it by GTID, caught up."""
    master = MariaDB(f"{name}-master", server_id=server_id).start()
    replica = MariaDB(f"{name}-replica", server_id=server_id + 1).start()
    try:
        replica.execute(f"CHANGE MASTER TO MASTER_HOST='127.0.0.1', MASTER_PORT={master.port}, "
                        "MASTER_USER='root', MASTER_PASSWORD='', MASTER_USE_GTID=slave_pos, "
                        "MASTER_CONNECT_RETRY=1")
        replica.execute("START SLAVE")
        wait_caught_up(master, replica)
        yield master, replica
    finally:
        replica.destroy()
        master.destroy()


@pytest.fixture(scope="module")
def pair() -> Iterator[tuple[MariaDB, MariaDB]]:
    with replicating("chk", 11) as (master, replica):
        master.execute("CREATE DATABASE billing")
        master.execute("CREATE TABLE billing.t (id INT PRIMARY KEY)")
        wait_caught_up(master, replica)
        yield master, replica


def wait_caught_up(master: MariaDB, replica: MariaDB, timeout: float = 20) -> None:
    pos = master.execute("SELECT @@GLOBAL.gtid_binlog_pos")[0][0]
    got = replica.execute("SELECT MASTER_GTID_WAIT(%s, %s)", (pos, timeout))[0][0]
    assert got == 0, "replica did not catch up"


def conf_for(tmp_path: Path, replica: MariaDB, master: MariaDB) -> Path:
    state = tmp_path / "state"
    state.mkdir(exist_ok=True)
    return write_config(tmp_path / "vigil.conf", state, {"Replication": {
        "Master_Host": "127.0.0.1", "Master_Port": master.port,
        "Replica_Host": "127.0.0.1", "Replica_Port": replica.port, "User": "root"}})


def test_replica_running_is_ok(pair: tuple[MariaDB, MariaDB], tmp_path: Path) -> None:
    master, replica = pair
    master.execute("INSERT INTO billing.t VALUES (1)")
    wait_caught_up(master, replica)
    r = run_check("replication", config=conf_for(tmp_path, replica, master))
    assert r.rc == 0, r
    assert "IO and SQL threads running, 0s behind the master" in r.line
    assert "0 transactions behind by GTID" in r.line and "'gtid_lag'=0" in r.line
    r = run_check("replication", "-w", "~:-1", config=conf_for(tmp_path, replica, master))
    assert r.rc == 1, r


def test_sql_thread_stopped_is_critical(pair: tuple[MariaDB, MariaDB], tmp_path: Path) -> None:
    master, replica = pair
    replica.execute("STOP SLAVE SQL_THREAD")
    try:
        master.execute("INSERT INTO billing.t VALUES (2), (3)")
        conf = conf_for(tmp_path, replica, master)
        # the IO thread still fetches: wait until the INSERT has reached the replica's relay log
        r = wait_until(lambda: (c := run_check("replication", config=conf)).line.count(
            "1 transactions behind") and c, 10, 0.1, what="the replica received the INSERT")
        assert r.rc == 2, r
        assert "replication broken: SQL thread stopped" in r.line
        assert "1 transactions behind by GTID" in r.line  # one INSERT of two rows
    finally:
        replica.execute("START SLAVE SQL_THREAD")
        wait_caught_up(master, replica)


def test_sql_error_is_critical_with_the_error(pair: tuple[MariaDB, MariaDB],
                                              tmp_path: Path) -> None:
    master, replica = pair
    # a conflicting row on the replica, kept out of its binlog (no errant GTID)
    _unlogged(replica, "INSERT INTO billing.t VALUES (100)")
    master.execute("INSERT INTO billing.t VALUES (100)")   # duplicate key when replicated
    wait_until(lambda: replica.execute("SHOW SLAVE STATUS")[0][11] != "Yes", 10, 0.1,
               what="the SQL thread stopped on the duplicate key")
    r = run_check("replication", "--no-master", config=conf_for(tmp_path, replica, master))
    assert r.rc == 2, r
    assert "SQL thread stopped (error 1062" in r.line and "Duplicate entry" in r.line
    _unlogged(replica, "DELETE FROM billing.t WHERE id = 100")
    replica.execute("START SLAVE SQL_THREAD")
    wait_caught_up(master, replica)
    assert run_check("replication", config=conf_for(tmp_path, replica, master)).rc == 0


def test_not_a_replica_is_unknown(pair: tuple[MariaDB, MariaDB], tmp_path: Path) -> None:
    master, replica = pair
    r = run_check("replication", "--replica", f"127.0.0.1:{master.port}",
                  config=conf_for(tmp_path, replica, master))
    assert r.rc == 3 and "is not a replica" in r.line, r


def test_replica_down_is_critical(pair: tuple[MariaDB, MariaDB], tmp_path: Path) -> None:
    from vigil.testing.ports import free_port

    master, replica = pair
    r = run_check("replication", "--replica", f"127.0.0.1:{free_port()}",
                  config=conf_for(tmp_path, replica, master))
    assert r.rc == 2 and "REPLICATION CRITICAL: replica" in r.line, r


def test_master_gone_is_critical(tmp_path: Path) -> None:
    with replicating("chk2", 21) as (master, replica):
        replica.execute("CREATE DATABASE IF NOT EXISTS billing")
        master.kill()
        wait_until(lambda: replica.execute("SHOW SLAVE STATUS")[0][10] != "Yes", 10, 0.1,
                   what="the IO thread lost the master")
        r = run_check("replication", config=conf_for(tmp_path, replica, master))
        assert r.rc == 2 and "IO thread Connecting" in r.line, r


def _unlogged(db: MariaDB, sql: str) -> None:
    conn = db.connect()
    try:
        with conn.cursor() as cur:
            cur.execute("SET SESSION sql_log_bin = 0")
            cur.execute(sql)
    finally:
        conn.close()


def test_errant_transaction_is_critical(tmp_path: Path) -> None:
    with replicating("chk3", 41) as (master, replica):
        replica.execute("CREATE DATABASE oops")  # written on the replica: errant
        r = run_check("replication", config=conf_for(tmp_path, replica, master))
        assert r.rc == 2 and "errant transactions on the replica: 0-42-" in r.line, r


def test_no_replica_on_an_sqlite_appliance_is_ok_not_configured(tmp_path: Path) -> None:
    from vigil.testing.ports import free_port

    state = tmp_path / "state"
    state.mkdir()
    # the all-in-one demo: billing on SQLite, [Replication] left at its defaults
    conf = write_config(tmp_path / "vigil.conf", state, {"Replication": {
        "Replica_Host": "127.0.0.1", "Replica_Port": free_port()}})
    r = run_check("replication", config=conf)
    assert r.rc == 0 and "REPLICATION OK: not configured" in r.line, r
    assert r.line.count("replica 127.0.0.1") <= 1
