"""Prove the repair worked: threads running, caught up, tables equal.

Checksums are taken at one consistent point while the master keeps
writing: the replica is paused, the master opens a consistent snapshot and
notes its binlog position (``binlog_snapshot_file/position`` turned into a
GTID position by ``BINLOG_GTID_POS``), runs ``CHECKSUM TABLE`` inside that
snapshot (no locks: writers are not stalled), and the replica is run exactly
up to that GTID (``START SLAVE UNTIL master_gtid_pos``) before running
``CHECKSUM TABLE`` itself. Then replication is started again.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from redundancy.replication import gtid
from redundancy.replication.errors import ReplicationError, VerifyFailed
from redundancy.replication.server import Server
from redundancy.replication.sql import quote_ident

Report = Callable[[str], None]


@dataclass
class VerifyResult:
    gtid_pos: str
    tables: int
    mismatched: list[str] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return not self.mismatched


def _status(replica: Server) -> dict:
    rows = replica.query(replica.sql("replica_status"))
    return rows[0] if rows else {}


def wait_running(replica: Server, timeout: float = 30.0,
                 sleep: Callable[[float], None] = time.sleep) -> None:
    deadline = time.monotonic() + timeout
    st: dict = {}
    while time.monotonic() < deadline:
        st = _status(replica)
        if st.get("Slave_IO_Running") == "Yes" and st.get("Slave_SQL_Running") == "Yes":
            return
        if st.get("Last_SQL_Errno") or (st.get("Last_IO_Errno")
                                        and st.get("Slave_IO_Running") == "No"):
            break
        sleep(0.2)
    raise VerifyFailed(
        "replication threads are not both running: IO "
        f"{st.get('Slave_IO_Running', '?')} ({st.get('Last_IO_Errno') or 0}: "
        f"{st.get('Last_IO_Error') or ''}), SQL {st.get('Slave_SQL_Running', '?')} "
        f"({st.get('Last_SQL_Errno') or 0}: {st.get('Last_SQL_Error') or ''})")


def wait_gtid(replica: Server, target: str, timeout: float, report: Report,
              step: float = 10.0) -> None:
    """``MASTER_GTID_WAIT`` in short steps, so progress shows and errors stop the wait."""
    deadline = time.monotonic() + timeout
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            pos = replica.scalar("SELECT @@GLOBAL.gtid_slave_pos")
            raise VerifyFailed(f"the replica did not reach the master's position {target} "
                               f"within {timeout:.0f} s (it is at {pos}); "
                               "[Replication] Catch_Up_Timeout_sec")
        got = replica.scalar(replica.sql("gtid_wait"), (target, round(min(step, left), 3)))
        if got == 0:
            return
        st = _status(replica)
        if st.get("Slave_SQL_Running") != "Yes" and st.get("Last_SQL_Errno"):
            raise VerifyFailed(f"replication stopped while catching up: error "
                               f"{st['Last_SQL_Errno']}: {st.get('Last_SQL_Error')}")
        behind = gtid.transactions_behind(target, replica.scalar(
            "SELECT @@GLOBAL.gtid_slave_pos"))
        report(f"  catching up: {behind} transaction(s) behind {target}")


def tables_of(master: Server, dbs: Sequence[str]) -> list[str]:
    if not dbs:
        return []
    marks = ", ".join(["%s"] * len(dbs))
    return [f"{r['db']}.{r['t']}" for r in master.query(
        "SELECT TABLE_SCHEMA AS db, TABLE_NAME AS t FROM information_schema.TABLES "
        f"WHERE TABLE_SCHEMA IN ({marks}) AND TABLE_TYPE = 'BASE TABLE' "
        "ORDER BY TABLE_SCHEMA, TABLE_NAME", tuple(dbs))]


def _checksums(server: Server, tables: Sequence[str]) -> dict[str, int | None]:
    out: dict[str, int | None] = {}
    for i in range(0, len(tables), 50):
        batch = tables[i:i + 50]
        sql = server.sql("checksum_table", table=", ".join(quote_ident(t) for t in batch))
        for row in server.query(sql, quiet=False):
            out[row["Table"]] = row["Checksum"]
    return out


def checksum_compare(master: Server, replica: Server, dbs: Sequence[str],
                     timeout: float, report: Report) -> VerifyResult:
    """CHECKSUM TABLE on both sides at the same GTID position."""
    start = time.monotonic()
    tables = tables_of(master, dbs)
    replica.execute(replica.sql("stop_replica"))
    try:
        master.execute_always("START TRANSACTION WITH CONSISTENT SNAPSHOT")
        try:
            snap = {r["Variable_name"].lower(): r["Value"]
                    for r in master.query(master.sql("snapshot_position"), quiet=False)}
            target = master.scalar(master.sql("binlog_gtid_pos"),
                                   (snap["binlog_snapshot_file"],
                                    int(snap["binlog_snapshot_position"])))
            ours = _checksums(master, tables)
        finally:
            master.execute_always("COMMIT")
        if not target:
            raise VerifyFailed("the master's binlog position has no GTID")
        report(f"  master checksums taken at {target}; running the replica up to it")
        replica.execute(replica.sql("start_replica_until_gtid"), (target,))
        deadline = time.monotonic() + timeout
        while True:
            st = _status(replica)
            if st.get("Slave_SQL_Running") == "No":
                if st.get("Last_SQL_Errno"):
                    raise VerifyFailed(f"replication stopped with error "
                                       f"{st['Last_SQL_Errno']}: {st.get('Last_SQL_Error')}")
                break
            if time.monotonic() > deadline:
                raise VerifyFailed(f"the replica did not reach {target} within "
                                   f"{timeout:.0f} s")
            time.sleep(0.1)
        pos = replica.scalar("SELECT @@GLOBAL.gtid_slave_pos")
        if not gtid.covers(pos, target):
            raise VerifyFailed(f"the replica stopped at {pos}, before {target}")
        theirs = _checksums(replica, tables)
    finally:
        with contextlib.suppress(ReplicationError):
            replica.execute(replica.sql("start_replica"))
    mismatched = [t for t in tables if ours.get(t) is None or ours.get(t) != theirs.get(t)]
    return VerifyResult(target, len(tables), mismatched, time.monotonic() - start)


def verify(master: Server, replica: Server, dbs: Sequence[str], timeout: float,
           report: Report, checksums: bool = True) -> VerifyResult:
    report("verify: replication threads")
    wait_running(replica)
    target = master.scalar("SELECT @@GLOBAL.gtid_binlog_pos")
    report(f"verify: waiting for the replica to reach the master's position {target}")
    wait_gtid(replica, target, timeout, report)
    if not checksums:
        return VerifyResult(target, 0)
    report(f"verify: CHECKSUM TABLE on both sides ({', '.join(dbs) or 'no databases'})")
    result = checksum_compare(master, replica, dbs, timeout, report)
    wait_running(replica)
    if not result.ok:
        raise VerifyFailed(f"checksums differ for {len(result.mismatched)} of "
                           f"{result.tables} table(s): {', '.join(result.mismatched)}")
    report(f"verify: {result.tables} table(s) equal at {result.gtid_pos}")
    return result
