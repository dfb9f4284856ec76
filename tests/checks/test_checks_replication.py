"""The replication plugin against a real MariaDB master + replica pair."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import run_check, write_config

from checks.replication import gtid_lag
from vigil.testing.mariadb import MariaDB

pytestmark = pytest.mark.mariadb


@pytest.fixture(scope="module")
def pair() -> Iterator[tuple[MariaDB, MariaDB]]:
    master = MariaDB("chk-master", server_id=11).start()
    replica = MariaDB("chk-replica", server_id=12).start()
    try:
        master.execute("CREATE DATABASE billing")
        master.execute("CREATE TABLE billing.t (id INT PRIMARY KEY)")
        replica.execute(f"CHANGE MASTER TO MASTER_HOST='127.0.0.1', MASTER_PORT={master.port}, "
                        "MASTER_USER='root', MASTER_PASSWORD='', MASTER_USE_GTID=slave_pos, "
                        "MASTER_CONNECT_RETRY=1")
        replica.execute("START SLAVE")
        wait_caught_up(master, replica)
        yield master, replica
    finally:
        replica.destroy()
        master.destroy()


def wait_caught_up(master: MariaDB, replica: MariaDB, timeout: float = 20) -> None:
    pos = master.execute("SELECT @@GLOBAL.gtid_binlog_pos")[0][0]
    got = replica.execute("SELECT MASTER_GTID_WAIT(%s, %s)", (pos, timeout))[0][0]
    assert got == 0, "replica did not catch up"


def conf_for(tmp_path: Path, replica: MariaDB) -> Path:
    state = tmp_path / "state"
    state.mkdir(exist_ok=True)
    return write_config(tmp_path / "vigil.conf", state,
                        {"Master": {"URL": replica.url("billing")}})


def test_gtid_lag_arithmetic() -> None:
    assert gtid_lag("0-1-100", "0-1-100") == 0
    assert gtid_lag("0-1-100,1-2-7", "0-1-90") == 17
    assert gtid_lag("0-2-100", "0-1-99") == 1


def test_replica_running_is_ok(pair: tuple[MariaDB, MariaDB], tmp_path: Path) -> None:
    master, replica = pair
    master.execute("INSERT INTO billing.t VALUES (1)")
    wait_caught_up(master, replica)
    r = run_check("replication", "--master-url", master.url("billing"),
                  config=conf_for(tmp_path, replica))
    assert r.rc == 0, r
    assert "IO and SQL threads running, 0s behind" in r.line
    assert "0 transactions behind by GTID" in r.line and "'gtid_lag'=0" in r.line


def test_sql_thread_stopped_is_critical(pair: tuple[MariaDB, MariaDB], tmp_path: Path) -> None:
    master, replica = pair
    replica.execute("STOP SLAVE SQL_THREAD")
    try:
        master.execute("INSERT INTO billing.t VALUES (2), (3)")
        time.sleep(0.3)
        r = run_check("replication", "--master-url", master.url("billing"),
                      config=conf_for(tmp_path, replica))
        assert r.rc == 2, r
        assert "replication broken: SQL thread No" in r.line
        assert "transactions behind by GTID" in r.line
    finally:
        replica.execute("START SLAVE SQL_THREAD")
        wait_caught_up(master, replica)


def test_sql_error_is_critical_with_the_error(pair: tuple[MariaDB, MariaDB],
                                              tmp_path: Path) -> None:
    master, replica = pair
    replica.execute("INSERT INTO billing.t VALUES (100)")  # an errant row on the replica
    master.execute("INSERT INTO billing.t VALUES (100)")   # duplicate key when replicated
    deadline = time.monotonic() + 10
    while replica.execute("SHOW SLAVE STATUS")[0][11] == "Yes" and time.monotonic() < deadline:
        time.sleep(0.1)
    r = run_check("replication", config=conf_for(tmp_path, replica))
    assert r.rc == 2, r
    assert "SQL thread No" in r.line and "Duplicate entry" in r.line
    replica.execute("DELETE FROM billing.t WHERE id = 100")
    replica.execute("START SLAVE SQL_THREAD")
    wait_caught_up(master, replica)
    assert run_check("replication", config=conf_for(tmp_path, replica)).rc == 0


def test_not_a_replica_is_unknown(pair: tuple[MariaDB, MariaDB], tmp_path: Path) -> None:
    master, _ = pair
    r = run_check("replication", "-U", master.url("billing"), config=conf_for(tmp_path, master))
    assert r.rc == 3 and "is not a replica" in r.line, r


def test_master_gone_is_critical(tmp_path: Path) -> None:
    master = MariaDB("chk-master2", server_id=21).start()
    replica = MariaDB("chk-replica2", server_id=22).start()
    try:
        replica.execute(f"CHANGE MASTER TO MASTER_HOST='127.0.0.1', MASTER_PORT={master.port}, "
                        "MASTER_USER='root', MASTER_USE_GTID=slave_pos, MASTER_CONNECT_RETRY=1")
        replica.execute("START SLAVE")
        wait_caught_up(master, replica)
        replica.execute("CREATE DATABASE IF NOT EXISTS billing")
        master.kill()
        deadline = time.monotonic() + 10
        while replica.execute("SHOW SLAVE STATUS")[0][10] == "Yes" and \
                time.monotonic() < deadline:
            time.sleep(0.1)
        r = run_check("replication", config=conf_for(tmp_path, replica))
        assert r.rc == 2 and "IO thread Connecting" in r.line, r
    finally:
        replica.destroy()
        master.destroy()
