"""`vigil replication repair` against a real master and replica while the master keeps writing."""

from __future__ import annotations

import contextlib
import json
from pathlib import Path

import pymysql
import pytest

from tests.redundancy.replication_pair import Pair, Writer, wipe_datadir
from vigil.cli import main
from vigil.testing.wait import poll

pytestmark = pytest.mark.e2e  # break a live master/replica pair, repair it while writes go on


def vigil(capsys: pytest.CaptureFixture[str], conf: Path, *args: str) -> tuple[int, str, str]:
    rc = main(["-c", str(conf), "replication", *args])
    out, err = capsys.readouterr()
    return rc, out, err


def test_status_healthy_json(pair: Pair, capsys: pytest.CaptureFixture[str]) -> None:
    conf = pair.conf()
    rc, out, _ = vigil(capsys, conf, "heartbeat", "--count", "2", "--interval", "0.05")
    assert rc == 0
    pair.wait_caught_up()
    rc, out, _ = vigil(capsys, conf, "status", "--json")
    assert rc == 0
    st = json.loads(out)
    assert st["io_running"] and st["sql_running"] and st["healthy"]
    assert st["gtid_lag_transactions"] == 0
    assert st["heartbeat_lag_sec"] is not None and st["heartbeat_lag_sec"] < 5
    assert st["errant_gtids"] == []
    rc, out, _ = vigil(capsys, conf, "status")
    assert "healthy" in out and "IO thread:   Yes" in out


def test_duplicate_row_fixed_without_reseed(pair: Pair, capsys: pytest.CaptureFixture[str],
                                            smtp) -> None:
    next_id = pair.master.execute("SELECT MAX(id) + 1 FROM app.t")[0][0]
    pair.on_replica_unlogged("INSERT INTO app.t (id, v, n) VALUES (%s, 'replica-only', 1)",
                             (next_id,))
    pair.master.execute("INSERT INTO app.t (id, v, n) VALUES (%s, 'master', 1)", (next_id,))
    st = pair.wait_sql_error()
    assert st["Last_SQL_Errno"] == 1062
    conf = pair.conf(smtp_port=smtp.port)
    rc, out, _ = vigil(capsys, conf, "status")
    assert rc == 1 and "1062" in out
    with Writer(pair.master) as writer:
        rc, out, err = vigil(capsys, conf, "repair", "-v")
    assert rc == 0, out + err
    assert "method: skip-row" in out
    assert "deleted the replica's conflicting row" in out
    assert "SQL [replica] DELETE FROM `app`.`t`" in out
    assert "mariadb-dump" not in out
    assert writer.rows > 0 and not writer.errors
    pair.assert_equal()
    msgs = smtp.wait_for(1)
    assert "replication repaired" in msgs[-1]["Subject"]


def test_missing_row_copied_from_master(pair: Pair, capsys: pytest.CaptureFixture[str]) -> None:
    pair.on_replica_unlogged("DELETE FROM app.accounts WHERE account_id IN ('acc3', 'acc4')")
    pair.master.execute("UPDATE app.accounts SET balance = balance + 1 "
                        "WHERE account_id IN ('acc2', 'acc3', 'acc4')")
    assert pair.wait_sql_error()["Last_SQL_Errno"] == 1032
    with Writer(pair.master) as writer:
        rc, out, err = vigil(capsys, pair.conf(), "repair", "--method", "skip-row")
    assert rc == 0, out + err
    assert "copied the master's current rows" in out
    assert writer.rows > 0
    pair.assert_equal()


def test_errant_transaction_then_conflict(pair: Pair, capsys: pytest.CaptureFixture[str]) -> None:
    # Written on the replica WITH its binlog: an errant GTID (0-2-N); with gtid strict
    # mode the master's next transaction stops with 1950, then with 1062.
    next_id = pair.master.execute("SELECT MAX(id) + 1 FROM app.t")[0][0]
    pair.replica.execute("INSERT INTO app.t (id, v, n) VALUES (%s, 'errant', 7)", (next_id,))
    pair.master.execute("INSERT INTO app.t (id, v, n) VALUES (%s, 'master', 7)", (next_id,))
    assert pair.wait_sql_error()["Last_SQL_Errno"] == 1950
    conf = pair.conf()
    rc, out, _ = vigil(capsys, conf, "status", "--json")
    assert rc == 1 and json.loads(out)["errant_gtids"] == [f"0-2-{_seq(pair)}"]
    with Writer(pair.master):
        rc, out, err = vigil(capsys, conf, "repair")
    assert rc == 0, out + err
    assert "forgot errant GTIDs" in out and "conflicting row" in out
    pair.assert_equal()
    rc, out, _ = vigil(capsys, conf, "status", "--json")
    assert rc == 0 and json.loads(out)["errant_gtids"] == []


def _seq(pair: Pair) -> int:
    state = pair.replica.execute("SELECT @@gtid_binlog_state")[0][0]
    return max(int(g.split("-")[2]) for g in state.split(",") if g.split("-")[1] == "2")


def purge_until(pair: Pair, current: str, timeout: float = 20) -> None:
    """PURGE BINARY LOGS, retried: a dump thread that has not noticed the replica left, or
    InnoDB's binlog checkpoint, keeps the old file for a moment."""
    def purged() -> bool:
        for (thread_id,) in pair.master.execute(
                "SELECT ID FROM information_schema.PROCESSLIST WHERE COMMAND = 'Binlog Dump'"):
            with contextlib.suppress(pymysql.MySQLError):
                pair.master.execute(f"KILL {int(thread_id)}")
        pair.master.execute("FLUSH NO_WRITE_TO_BINLOG ENGINE LOGS")
        pair.master.execute("PURGE BINARY LOGS TO %s", (current,))
        return [r[0] for r in pair.master.execute("SHOW BINARY LOGS")] == [current]

    if not poll(purged, timeout, 0.2):
        raise AssertionError(f"binlogs not purged: {pair.master.execute('SHOW WARNINGS')}")


def test_purged_binlogs_reseeded_with_dump(pair: Pair, capsys: pytest.CaptureFixture[str],
                                           smtp) -> None:
    pair.replica.execute("STOP SLAVE")
    for i in range(30):
        pair.master.execute("INSERT INTO app.t (v, n) VALUES ('while-stopped', %s)", (i,))
    pair.master.execute("FLUSH BINARY LOGS")
    current = pair.master.execute("SHOW MASTER STATUS")[0][0]
    purge_until(pair, current)
    pair.replica.execute("START SLAVE")
    st = pair.wait_sql_error()
    assert st["Last_IO_Errno"] == 1236
    conf = pair.conf(smtp_port=smtp.port)
    with Writer(pair.master) as writer:
        rc, out, err = vigil(capsys, conf, "repair", "-v")
    assert rc == 0, out + err
    assert "diagnosis: purged-binlogs" in out
    assert "method: dump" in out
    assert "mariadb-dump --defaults-extra-file=<0600 temp file> --single-transaction " \
           "--master-data=1 --gtid" in out
    assert "table(s) equal" in out
    assert writer.rows > 0
    pair.assert_equal()
    assert "replication repaired" in smtp.wait_for(1)[-1]["Subject"]


def test_wiped_replica_reseeded(pair: Pair, capsys: pytest.CaptureFixture[str]) -> None:
    pair.master.execute("CREATE EVENT app.purge_old ON SCHEDULE EVERY 1 HOUR "
                        "DO DELETE FROM app.t WHERE n < 0")
    wipe_datadir(pair.replica)
    conf = pair.conf()
    rc, out, _ = vigil(capsys, conf, "status")
    assert rc == 1 and "NOT CONFIGURED" in out
    rc, out, err = vigil(capsys, conf, "repair", "--dry-run", "-v")
    assert rc == 0, out + err
    assert "diagnosis: not-configured" in out and "dry run" in out
    assert "MASTER_PASSWORD = '********'" in out
    assert "repl-secret-9" not in out + err
    assert not pair.replica.execute("SHOW SLAVE STATUS")     # dry run changed nothing
    with Writer(pair.master) as writer:
        rc, out, err = vigil(capsys, conf, "repair")
    assert rc == 0, out + err
    assert "re-seeded app" in out
    assert writer.rows > 0
    pair.assert_equal()
    # an event loaded from the dump must not fire on the replica
    assert pair.replica.execute("SELECT STATUS FROM information_schema.EVENTS "
                                "WHERE EVENT_NAME = 'purge_old'") == [("SLAVESIDE_DISABLED",)]


def test_master_gone_mid_reseed_then_rerun(pair: Pair, capsys: pytest.CaptureFixture[str]
                                           ) -> None:
    from redundancy.replication.errors import SnapshotFailed
    from redundancy.replication.repair import Repair, RepairOptions
    from redundancy.replication.server import params_from_config
    from vigil import config

    wipe_datadir(pair.replica)
    cfg = config.load(pair.conf(), sections=("Replication", "Site"))
    lines: list[str] = []

    def report(line: str) -> None:
        lines.append(line)
        if line.startswith("re-seed with mariadb-dump"):
            pair.master.kill()            # the master dies as the snapshot starts

    repair = Repair(params_from_config(cfg), RepairOptions.from_config(cfg), report)
    with pytest.raises(SnapshotFailed, match="mariadb-dump on the master failed"):
        repair.run()
    assert pair.slave_status().get("Slave_SQL_Running") == "No"   # not started half-loaded
    pair.master.start()
    rc, out, err = vigil(capsys, pair.conf(), "repair")
    assert rc == 0, out + err
    assert "incomplete-reseed" in out
    pair.assert_equal()
