"""Bad input: each refused with a clear message, and nothing on the replica changed."""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from redundancy.replication.lock import SERVER_LOCK_NAME, file_lock
from tests.redundancy.replication_pair import REPL_PASSWORD, Pair, wipe_datadir
from vigil.cli import main
from vigil.testing.mariadb import MariaDB
from vigil.testing.ports import free_port

pytestmark = pytest.mark.integration  # a throw-away MariaDB pair or server


def vigil(capsys: pytest.CaptureFixture[str], conf: Path, *args: str) -> tuple[int, str, str]:
    rc = main(["-c", str(conf), "replication", *args])
    out, err = capsys.readouterr()
    return rc, out, err


def break_with_duplicate(pair: Pair) -> None:
    next_id = pair.master.execute("SELECT MAX(id) + 1 FROM app.t")[0][0]
    pair.on_replica_unlogged("INSERT INTO app.t (id, v, n) VALUES (%s, 'r', 1)", (next_id,))
    pair.master.execute("INSERT INTO app.t (id, v, n) VALUES (%s, 'm', 1)", (next_id,))
    assert pair.wait_sql_error()["Last_SQL_Errno"] == 1062


@contextlib.contextmanager
def another_master(pair: Pair) -> Iterator[MariaDB]:
    """A second master (server_id 9) that the pair's replica is made to follow."""
    with MariaDB("repl-other", server_id=9) as other:
        other.execute("CREATE USER 'repl'@'%%' IDENTIFIED BY %s", (REPL_PASSWORD,))
        other.execute("GRANT REPLICATION SLAVE ON *.* TO 'repl'@'%'")
        pair.replica.execute("STOP SLAVE")
        pair.replica.execute("CHANGE MASTER TO MASTER_PORT=%s", (other.port,))
        pair.replica.execute("START SLAVE")
        yield other


def test_wrong_host(pair: Pair, capsys: pytest.CaptureFixture[str]) -> None:
    conf = pair.conf(Replica_Port=str(free_port()), Connect_Timeout_sec="2")
    rc, _, err = vigil(capsys, conf, "repair")
    assert rc == 3
    assert "cannot reach the replica" in err and "not reachable" in err
    rc, _, err = vigil(capsys, conf, "status")
    assert rc == 3 and "not reachable" in err


def test_wrong_credentials(pair: Pair, capsys: pytest.CaptureFixture[str]) -> None:
    pair.master.execute("CREATE USER 'admin'@'%' IDENTIFIED BY 'right'")
    conf = pair.conf(User="admin", Password="wrong-password-123")
    rc, out, err = vigil(capsys, conf, "repair")
    assert rc == 3
    assert "access denied" in err and "[Replication] User/Password" in err
    assert "wrong-password-123" not in out + err


def test_option_file_must_be_private(pair: Pair, capsys: pytest.CaptureFixture[str],
                                     tmp_path: Path) -> None:
    cnf = tmp_path / "repl.cnf"
    cnf.write_text("[client]\nuser=root\npassword=\n")
    cnf.chmod(0o644)
    rc, _, err = vigil(capsys, pair.conf(Option_File=str(cnf)), "status")
    assert rc == 2 and "[Replication] Option_File" in err and "chmod 600" in err
    cnf.chmod(0o600)
    rc, out, _ = vigil(capsys, pair.conf(Option_File=str(cnf)), "status")
    assert rc == 0, out


def test_refuses_the_master_itself(pair: Pair, capsys: pytest.CaptureFixture[str]) -> None:
    conf = pair.conf(Replica_Port=str(pair.master.port))
    rc, _, err = vigil(capsys, conf, "repair", "--method", "dump")
    assert rc == 2 and "same server" in err


def test_refuses_a_writable_server_that_replicates_from_nobody(
        pair: Pair, capsys: pytest.CaptureFixture[str]) -> None:
    pair.replica.execute("STOP SLAVE")
    pair.replica.execute("RESET SLAVE ALL")
    pair.replica.execute("SET GLOBAL read_only = OFF")
    rc, _, err = vigil(capsys, pair.conf(), "repair")
    assert rc == 2 and "looks like a master" in err
    assert pair.replica.execute("SELECT COUNT(*) FROM app.t")[0][0] > 0   # untouched


def test_refuses_replica_of_another_master(pair: Pair, capsys: pytest.CaptureFixture[str]
                                          ) -> None:
    with another_master(pair) as other:
        rc, _, err = vigil(capsys, pair.conf(), "repair", "--method", "dump")
        assert rc == 2
        assert f"points at 127.0.0.1:{other.port}" in err or "follows server_id 9" in err
        assert "--repoint" in err
        assert pair.replica.execute("SELECT COUNT(*) FROM app.t")[0][0] > 0


def test_not_enough_disk(pair: Pair, capsys: pytest.CaptureFixture[str]) -> None:
    wipe_datadir(pair.replica)
    conf = pair.conf(Disk_Reserve_MB=str(1 << 40))
    rc, _, err = vigil(capsys, conf, "repair")
    assert rc == 1 and "not enough disk" in err and "Disk_Reserve_MB" in err
    assert not pair.replica.execute("SHOW SLAVE STATUS")   # refused before touching it


def test_second_repair_refused_file_lock(pair: Pair, capsys: pytest.CaptureFixture[str]) -> None:
    break_with_duplicate(pair)
    conf = pair.conf()
    with file_lock(pair.base / "state" / "replication-repair.lock"):
        rc, _, err = vigil(capsys, conf, "repair")
    assert rc == 1 and "another replication repair is running" in err
    assert f"pid {os.getpid()}" in err
    assert pair.slave_status()["Last_SQL_Errno"] == 1062     # not touched
    rc, out, err = vigil(capsys, conf, "repair")
    assert rc == 0, out + err


def test_second_repair_refused_server_lock(pair: Pair, capsys: pytest.CaptureFixture[str]
                                          ) -> None:
    """Two machines (two lock files) repairing one replica: the replica's GET_LOCK says no."""
    break_with_duplicate(pair)
    holder = pair.replica.connect()
    try:
        with holder.cursor() as cur:
            cur.execute("SELECT GET_LOCK(%s, 0)", (SERVER_LOCK_NAME,))
        rc, _, err = vigil(capsys, pair.conf(), "repair")
    finally:
        holder.close()
    assert rc == 1 and "against replica" in err
    assert pair.slave_status()["Last_SQL_Errno"] == 1062


def test_skip_row_refused_for_purged_binlogs(pair: Pair, capsys: pytest.CaptureFixture[str]
                                            ) -> None:
    wipe_datadir(pair.replica)
    rc, _, err = vigil(capsys, pair.conf(), "repair", "--method", "skip-row")
    assert rc == 1 and "cannot fix not-configured" in err


def test_backup_method_needs_settings(pair: Pair, capsys: pytest.CaptureFixture[str]) -> None:
    break_with_duplicate(pair)
    rc, _, err = vigil(capsys, pair.conf(), "repair", "--method", "backup")
    assert rc == 1 and "Replica_Start_Command" in err


def test_bad_config_value(pair: Pair, capsys: pytest.CaptureFixture[str]) -> None:
    rc, _, err = vigil(capsys, pair.conf(Method="rebuild"), "status")
    assert rc == 2 and "[Replication] Method" in err and "auto" in err
    rc, _, err = vigil(capsys, pair.conf(), "repair", "--replica", "nohost")
    assert rc == 1 and "is not host:port" in err


def test_master_down(pair: Pair, capsys: pytest.CaptureFixture[str]) -> None:
    conf = pair.conf(Connect_Timeout_sec="2")
    pair.master.stop()
    rc, out, _ = vigil(capsys, conf, "status", "--json")
    st = json.loads(out)
    assert rc == 1 and st["master_reachable"] is False and st["gtid_lag_transactions"] is None
    assert any("master not reachable" in p for p in st["problems"])
    rc, _, err = vigil(capsys, conf, "repair")
    assert rc == 3 and "cannot reach the master" in err


def test_repoint_reseeds_from_the_configured_master(pair: Pair,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    with another_master(pair):
        rc, out, err = vigil(capsys, pair.conf(), "repair", "--method", "dump", "--repoint")
        assert rc == 0, out + err
    assert pair.slave_status()["Master_Port"] == pair.master.port
    pair.assert_equal()
