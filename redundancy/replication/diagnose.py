"""From a status to a fault and the least disruptive fix. Pure functions.

The safety rules live here too: the repair refuses a target that looks like
the master, or a replica that follows some other master.
"""

from __future__ import annotations

import enum
import re
import socket
from dataclasses import dataclass, field

from redundancy.replication.errors import UnsafeTarget
from redundancy.replication.status import ReplicaStatus

ER_DUP_ENTRY = 1062
ER_KEY_NOT_FOUND = 1032
ER_MASTER_FATAL_READING_BINLOG = 1236
ER_GTID_STRICT_OUT_OF_ORDER = 1950
ROW_ERRORS = {ER_DUP_ENTRY, ER_KEY_NOT_FOUND}


class Fault(enum.Enum):
    HEALTHY = "healthy"
    STOPPED = "stopped"                  # threads stopped, no error: just start them
    ROW_CONFLICT = "row-conflict"        # 1062 / 1032 on one row
    ERRANT = "errant-transactions"       # 1950, or GTIDs written on the replica itself
    PURGED_BINLOGS = "purged-binlogs"    # 1236: the master no longer has what we need
    NOT_CONFIGURED = "not-configured"    # wiped or new replica
    INCOMPLETE = "incomplete-reseed"     # a previous re-seed did not finish
    SQL_ERROR = "sql-error"              # any other applier error
    IO_ERROR = "io-error"                # the replica cannot read the master's binlog
    REPLICA_DOWN = "replica-down"        # its server does not answer (backup method only)


# fault -> the method ``auto`` uses first
AUTO_METHOD = {
    Fault.HEALTHY: None,
    Fault.STOPPED: "skip-row",
    Fault.ROW_CONFLICT: "skip-row",
    Fault.ERRANT: "skip-row",
    Fault.PURGED_BINLOGS: "dump",
    Fault.NOT_CONFIGURED: "dump",
    Fault.INCOMPLETE: "dump",
    Fault.SQL_ERROR: "dump",
    Fault.IO_ERROR: None,
    Fault.REPLICA_DOWN: "backup",
}


@dataclass
class RowConflict:
    errno: int
    table: str                      # db.table
    key_name: str | None = None     # 1062 only
    key_value: str | None = None    # 1062 only


@dataclass
class Diagnosis:
    fault: Fault
    summary: str
    method: str | None
    conflict: RowConflict | None = None
    notes: list[str] = field(default_factory=list)


_TABLE = re.compile(r"on table ([^;\s]+?)\s*;")
_DUP = re.compile(r"Duplicate entry '(.*)' for key '([^']+)'", re.S)


def parse_row_conflict(errno: int, message: str) -> RowConflict | None:
    """Table (and for 1062 the key) named in a row event's error message."""
    t = _TABLE.search(message)
    if not t:
        return None
    conflict = RowConflict(errno, t.group(1).replace("`", ""))
    if errno == ER_DUP_ENTRY:
        d = _DUP.search(message)
        if not d:
            return None
        conflict.key_value, conflict.key_name = d.group(1), d.group(2)
    return conflict


def diagnose(st: ReplicaStatus, incomplete: str | None = None) -> Diagnosis:
    """What is wrong, and which method ``auto`` would use."""
    if incomplete:
        return Diagnosis(Fault.INCOMPLETE, f"a previous re-seed did not finish ({incomplete})",
                         AUTO_METHOD[Fault.INCOMPLETE])
    if not st.configured:
        return Diagnosis(Fault.NOT_CONFIGURED,
                         "the replica has no replication configured (new or wiped datadir)",
                         "dump")
    if st.sql_errno in ROW_ERRORS:
        conflict = parse_row_conflict(st.sql_errno, st.sql_error)
        what = "duplicate key" if st.sql_errno == ER_DUP_ENTRY else "row not found"
        where = f" in {conflict.table}" if conflict else ""
        return Diagnosis(Fault.ROW_CONFLICT,
                         f"SQL thread stopped on error {st.sql_errno} ({what}){where}",
                         "skip-row" if conflict else "dump", conflict)
    if st.sql_errno == ER_GTID_STRICT_OUT_OF_ORDER or (st.errant_gtids and not st.sql_running):
        return Diagnosis(Fault.ERRANT,
                         "transactions written on the replica itself block replication: "
                         + (",".join(st.errant_gtids) or st.sql_error), "skip-row")
    if st.io_errno == ER_MASTER_FATAL_READING_BINLOG:
        return Diagnosis(Fault.PURGED_BINLOGS,
                         "the master no longer has the binlogs the replica needs (1236): "
                         + st.io_error, "dump")
    if st.sql_errno:
        return Diagnosis(Fault.SQL_ERROR, f"SQL thread error {st.sql_errno}: {st.sql_error}",
                         "dump")
    if st.io_errno and not st.io_running:
        return Diagnosis(Fault.IO_ERROR,
                         f"the replica cannot read the master's binlog ({st.io_errno}: "
                         f"{st.io_error}); check the replication account and the network; "
                         "re-seeding would not help", None)
    if not (st.io_running and st.sql_running):
        return Diagnosis(Fault.STOPPED, "replication is stopped without an error", "skip-row")
    diag = Diagnosis(Fault.HEALTHY, "replication is running", None)
    if st.errant_gtids:
        diag.notes.append("errant transactions on the replica: " + ",".join(st.errant_gtids))
    return diag


def _same_host(a: str, b: str) -> bool:
    def addrs(h: str) -> set[str]:
        try:
            return {str(i[4][0]) for i in socket.getaddrinfo(h, None)}
        except OSError:
            return {h}
    loop = {"127.0.0.1", "::1"}
    aa, bb = addrs(a), addrs(b)
    return bool(aa & bb) or (aa <= loop and bb <= loop)


def check_safe_target(st: ReplicaStatus, master_ident: dict[str, object],
                      replica_ident: dict[str, object], master_address: tuple[str, int],
                      repoint: bool = False) -> None:
    """Refuse a target that is the master, looks like a master, or follows another one."""
    m_id, r_id = int(master_ident["@@server_id"]), int(replica_ident["@@server_id"])  # type: ignore[call-overload]
    same_place = (master_ident.get("@@hostname") == replica_ident.get("@@hostname")
                  and master_ident.get("@@port") == replica_ident.get("@@port")
                  and master_ident.get("@@datadir") == replica_ident.get("@@datadir"))
    if same_place:
        raise UnsafeTarget("the replica and the master are the same server "
                           f"(server_id {m_id}, port {master_ident.get('@@port')}); "
                           "check [Replication] Replica_Host/Replica_Port")
    if m_id == r_id:
        raise UnsafeTarget(f"the replica has the master's server_id {m_id}; a replica needs "
                           "its own server_id (and this may be the master itself): refusing")
    if not st.configured and not st.replica_read_only:
        raise UnsafeTarget("the target has read_only=OFF and replicates from nobody: it looks "
                           "like a master, not a replica; set read_only=ON on the real replica "
                           "(in its my.cnf) before repairing it")
    if st.configured and not repoint:
        if st.master_server_id and st.master_server_id != m_id:
            raise UnsafeTarget(
                f"the replica follows server_id {st.master_server_id} at "
                f"{st.master_host}:{st.master_port}, not the configured master "
                f"{master_address[0]}:{master_address[1]} (server_id {m_id}); fix "
                "[Replication] Master_Host/Master_Port, or pass --repoint to re-seed it from "
                "the configured master")
        elsewhere = (st.master_port != master_address[1]
                     or not _same_host(st.master_host, master_address[0]))
        if elsewhere and st.master_server_id != m_id:
            raise UnsafeTarget(
                f"the replica points at {st.master_host}:{st.master_port}, not the "
                f"configured master {master_address[0]}:{master_address[1]}; fix the "
                "config, or pass --repoint to re-seed it from the configured master")
