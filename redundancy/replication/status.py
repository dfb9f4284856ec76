"""What the replica is doing: threads, errors, lag three ways, errant GTIDs.

``replica_status(conn_params)`` is the interface the ``check_replication``
plugin uses (see /work/brief/interfaces.md). Lag is measured by comparing
GTID positions (the master's ``gtid_binlog_pos`` against the replica's
``gtid_slave_pos``) and by the heartbeat table, not only by
``Seconds_Behind_Master``.
"""

from __future__ import annotations

import contextlib
from dataclasses import asdict, dataclass, field
from typing import Any

from redundancy.replication import gtid, heartbeat
from redundancy.replication.errors import ReplicationError
from redundancy.replication.server import PairParams, Server, ServerParams, SqlLog

DEFAULT_HEARTBEAT = "vigil.heartbeat"


@dataclass
class ReplicaStatus:
    io_running: bool
    sql_running: bool
    last_errno: int
    last_error: str
    gtid_lag_transactions: int | None
    seconds_behind: int | None
    heartbeat_lag_sec: float | None
    errant_gtids: list[str]
    # Beyond the agreed interface: what diagnosis and the CLI need.
    configured: bool = True
    io_state: str = ""
    io_errno: int = 0
    io_error: str = ""
    sql_errno: int = 0
    sql_error: str = ""
    master_host: str = ""
    master_port: int = 0
    master_server_id: int | None = None
    using_gtid: str = ""
    gtid_slave_pos: str = ""
    gtid_io_pos: str = ""
    replica_server_id: int | None = None
    replica_read_only: bool | None = None
    replica_binlog_state: str = ""
    master_reachable: bool | None = None
    master_error: str = ""
    configured_master_server_id: int | None = None
    master_gtid_binlog_pos: str = ""
    relay_master_log_file: str = ""
    exec_master_log_pos: int = 0
    raw: dict[str, Any] = field(default_factory=dict, repr=False)

    @property
    def healthy(self) -> bool:
        return (self.configured and self.io_running and self.sql_running
                and not self.last_errno and not self.errant_gtids
                and self.master_reachable is not False)

    def problems(self) -> list[str]:
        out = []
        if not self.configured:
            out.append("replication is not configured on the replica")
            return out
        if not self.io_running:
            out.append(f"IO thread {self.io_state or 'stopped'}"
                       + (f" (error {self.io_errno}: {self.io_error})" if self.io_errno else ""))
        if not self.sql_running:
            out.append("SQL thread stopped"
                       + (f" (error {self.sql_errno}: {self.sql_error})"
                          if self.sql_errno else ""))
        if self.errant_gtids:
            out.append("errant transactions on the replica: " + ",".join(self.errant_gtids))
        if self.master_reachable is False:
            out.append(f"master not reachable: {self.master_error}")
        return out

    def to_json(self) -> dict[str, Any]:
        d = asdict(self)
        d.pop("raw", None)
        d["healthy"] = self.healthy
        d["problems"] = self.problems()
        return d


def read_status(replica: Server, master: Server | None,
                heartbeat_table: str = DEFAULT_HEARTBEAT) -> ReplicaStatus:
    """One look at both servers. ``master`` None or unreachable: GTID lag unknown."""
    rows = replica.query(replica.sql("replica_status"))
    ident = replica.query(replica.sql("identity"))[0]
    pos = replica.query(replica.sql("gtid_positions"))[0]
    values = list(pos.values())
    binlog_state, slave_pos = values[1] or "", values[2] or ""
    st = ReplicaStatus(io_running=False, sql_running=False, last_errno=0, last_error="",
                       gtid_lag_transactions=None, seconds_behind=None,
                       heartbeat_lag_sec=None, errant_gtids=[], configured=bool(rows),
                       gtid_slave_pos=slave_pos, replica_binlog_state=binlog_state,
                       replica_server_id=int(ident["@@server_id"]),
                       replica_read_only=bool(int(ident["@@read_only"])))
    if rows:
        r = rows[0]
        st.raw = r
        st.io_state = str(r.get("Slave_IO_Running") or "")
        st.io_running = st.io_state == "Yes"
        st.sql_running = r.get("Slave_SQL_Running") == "Yes"
        st.io_errno, st.io_error = int(r.get("Last_IO_Errno") or 0), r.get("Last_IO_Error") or ""
        st.sql_errno = int(r.get("Last_SQL_Errno") or 0)
        st.sql_error = r.get("Last_SQL_Error") or ""
        st.last_errno = st.sql_errno or st.io_errno
        st.last_error = st.sql_error if st.sql_errno else st.io_error
        sbm = r.get("Seconds_Behind_Master")
        st.seconds_behind = int(sbm) if sbm is not None else None
        st.master_host, st.master_port = r.get("Master_Host") or "", int(r.get("Master_Port") or 0)
        msid = r.get("Master_Server_Id")
        st.master_server_id = int(msid) if msid else None
        st.using_gtid = r.get("Using_Gtid") or ""
        st.gtid_io_pos = r.get("Gtid_IO_Pos") or ""
        st.relay_master_log_file = r.get("Relay_Master_Log_File") or ""
        st.exec_master_log_pos = int(r.get("Exec_Master_Log_Pos") or 0)
    if master is not None:
        try:
            m_ident = master.query(master.sql("identity"))[0]
            m_pos = list(master.query(master.sql("gtid_positions"))[0].values())
        except ReplicationError as exc:
            st.master_reachable, st.master_error = False, str(exc)
            master = None
        else:
            st.master_reachable = True
            st.configured_master_server_id = int(m_ident["@@server_id"])
            st.master_gtid_binlog_pos = m_pos[0] or ""
            st.gtid_lag_transactions = gtid.transactions_behind(m_pos[0], slave_pos)
            st.errant_gtids = [str(g) for g in gtid.errant(binlog_state, m_pos[1])]
    hb_server = st.configured_master_server_id or st.master_server_id
    with contextlib.suppress(ReplicationError):
        st.heartbeat_lag_sec = heartbeat.lag_seconds(replica, master, heartbeat_table,
                                                     hb_server)
    return st


def replica_status(conn_params: PairParams | ServerParams,
                   heartbeat_table: str = DEFAULT_HEARTBEAT) -> ReplicaStatus:
    """The replica's status; pass a :class:`PairParams` to also measure GTID lag.

    Raises ``ServerUnavailable``/``AccessDenied`` when the replica cannot be
    reached; an unreachable master only leaves the GTID lag as None.
    """
    if isinstance(conn_params, PairParams):
        replica_p, master_p = conn_params.replica, conn_params.master
    else:
        replica_p, master_p = conn_params, None
    log = SqlLog()
    with Server(replica_p, log) as replica:
        master = Server(master_p, log) if master_p is not None else None
        try:
            if master is not None:
                try:
                    master.connect()
                except ReplicationError as exc:
                    st = read_status(replica, None, heartbeat_table)
                    st.master_reachable, st.master_error = False, str(exc)
                    return st
            return read_status(replica, master, heartbeat_table)
        finally:
            if master is not None:
                master.close()
