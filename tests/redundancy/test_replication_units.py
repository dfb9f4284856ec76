"""Pure parts: GTID arithmetic, error parsing, binlog row images, SQL resolver, masking."""

from __future__ import annotations

import pytest

from redundancy.replication import gtid
from redundancy.replication.diagnose import Fault, diagnose, parse_row_conflict
from redundancy.replication.errors import ReplicationError
from redundancy.replication.rowfix import parse_row_events, parse_value
from redundancy.replication.server import SqlLog, render
from redundancy.replication.sql import parse_version, resolve
from redundancy.replication.status import ReplicaStatus
from vigil.config import Secret


@pytest.mark.parametrize(("master", "replica", "behind"), [
    ("0-1-100", "0-1-100", 0),
    ("0-1-100", "0-1-90", 10),
    ("0-1-100", "", 100),
    ("0-1-100,1-5-7", "0-1-100,1-5-2", 5),
    ("0-1-100", "0-1-120", 0),
    ("0-3-50", "0-1-40", 10),          # sequence numbers run per domain, whoever wrote
])
def test_transactions_behind(master: str, replica: str, behind: int) -> None:
    assert gtid.transactions_behind(master, replica) == behind
    assert gtid.covers(replica, master) == (behind == 0)


def test_errant() -> None:
    assert gtid.errant("0-1-9,0-2-10", "0-1-11") == [gtid.Gtid(0, 2, 10)]
    assert gtid.errant("0-1-9", "0-1-11") == []
    assert gtid.errant("0-1-12", "0-1-11") == [gtid.Gtid(0, 1, 12)]
    assert gtid.errant("", "0-1-1") == []


def test_parse_gtid_rejects_garbage() -> None:
    with pytest.raises(ValueError, match="is not a GTID"):
        gtid.parse_gtid("0-1")
    assert gtid.format_list(gtid.parse_list("1-2-3,0-1-5")) == "0-1-5,1-2-3"


def test_parse_duplicate_error() -> None:
    msg = ("Could not execute Write_rows_v1 event on table app.t; Duplicate entry '21' for key "
           "'PRIMARY', Error_code: 1062; handler error HA_ERR_FOUND_DUPP_KEY; the event's "
           "master log mysql-bin.000001, end_log_pos 2212")
    c = parse_row_conflict(1062, msg)
    assert c is not None and (c.table, c.key_name, c.key_value) == ("app.t", "PRIMARY", "21")
    missing = ("Could not execute Update_rows_v1 event on table app.accounts; Can't find record "
               "in 'accounts', Error_code: 1032; handler error HA_ERR_KEY_NOT_FOUND")
    c = parse_row_conflict(1032, missing)
    assert c is not None and c.table == "app.accounts" and c.key_value is None
    assert parse_row_conflict(1062, "something else") is None


def _status(**kw: object) -> ReplicaStatus:
    base: dict = dict(io_running=True, sql_running=True, last_errno=0, last_error="",
                      gtid_lag_transactions=0, seconds_behind=0, heartbeat_lag_sec=None,
                      errant_gtids=[])
    base.update(kw)
    return ReplicaStatus(**base)


@pytest.mark.parametrize(("kw", "fault", "method"), [
    ({}, Fault.HEALTHY, None),
    ({"configured": False}, Fault.NOT_CONFIGURED, "dump"),
    ({"sql_running": False}, Fault.STOPPED, "skip-row"),
    ({"sql_running": False, "sql_errno": 1062,
      "sql_error": "Could not execute Write_rows_v1 event on table a.b; Duplicate entry '1' "
                   "for key 'PRIMARY', Error_code: 1062"}, Fault.ROW_CONFLICT, "skip-row"),
    ({"sql_running": False, "sql_errno": 1950, "sql_error": "out-of-order"},
     Fault.ERRANT, "skip-row"),
    ({"io_running": False, "io_errno": 1236, "io_error": "purged"},
     Fault.PURGED_BINLOGS, "dump"),
    ({"io_running": False, "io_errno": 1045, "io_error": "Access denied"}, Fault.IO_ERROR, None),
    ({"sql_running": False, "sql_errno": 1146, "sql_error": "no such table"},
     Fault.SQL_ERROR, "dump"),
])
def test_diagnose_table(kw: dict, fault: Fault, method: str | None) -> None:
    d = diagnose(_status(**kw))
    assert (d.fault, d.method) == (fault, method)


def test_incomplete_reseed_wins() -> None:
    assert diagnose(_status(), incomplete="dump re-seed").fault == Fault.INCOMPLETE


BINLOG = """# at 2285
#261121 23:40:06 server id 1  end_log_pos 2285 GTID 0-1-11 trans
START TRANSACTION
### UPDATE `app`.`t`
### WHERE
###   @1=2
###   @2='it''s \\'x\\''
###   @3=NULL
### SET
###   @1=2
###   @2='upd'
###   @3=-1 (4294967295)
### DELETE FROM `app`.`u`
### WHERE
###   @1='acc3'
COMMIT/*!*/;
"""


def test_parse_row_events() -> None:
    events = parse_row_events(BINLOG.splitlines(keepends=True))
    assert [(e.kind, e.table) for e in events] == [("UPDATE", "app.t"), ("DELETE", "app.u")]
    assert events[0].before[1] == 2 and events[0].before[3] is None
    assert events[0].after[3] == -1
    assert events[1].image == {1: "acc3"}
    assert parse_value("'a\\\\b'") == "a\\b"


def test_sql_resolver() -> None:
    old = parse_version("10.3.39-MariaDB-log")
    new = parse_version("10.11.19-MariaDB-0+deb12u1-log")
    assert resolve("replica_status", old) == "SHOW SLAVE STATUS"
    assert resolve("replica_status", new) == "SHOW REPLICA STATUS"
    with pytest.raises(ReplicationError, match="MariaDB replication only"):
        resolve("replica_status", parse_version("8.0.36"))
    with pytest.raises(ReplicationError, match="too old"):
        resolve("gtid_wait", parse_version("10.0.1-MariaDB"))


def test_password_masked_in_rendered_sql() -> None:
    shown = render(None, "CHANGE MASTER TO MASTER_USER = %s, MASTER_PASSWORD = %s",
                   ("repl", Secret("s3cret")))
    assert "s3cret" not in shown and "'********'" in shown
    log = SqlLog()
    log.record("replica", shown, skipped=True)
    assert log.statements == [f"[replica] {shown};  -- dry run: not executed"]
