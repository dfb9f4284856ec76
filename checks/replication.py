"""Replica health: IO and SQL threads running, and how far behind the master it is.

Uses ``redundancy.replication.status.replica_status`` when the replication
room provides it; until then reads ``SHOW SLAVE STATUS`` itself. A stopped
thread, a replication error or an unknown lag is CRITICAL whatever the
thresholds say; the thresholds judge the lag in seconds. With ``--master-url``
the GTID positions are compared too (``Seconds_Behind_Master`` reads 0 right
after START SLAVE while far behind), shown as ``gtid_lag`` transactions.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass

from checks.db import connect, database_url, require_mysql, timed, where
from checks.perfdata import Perfdata
from checks.plugin import CRITICAL, Context, Plugin, PluginError, Reading


@dataclass
class Status:
    io_running: str        # Yes | No | Connecting
    sql_running: str
    seconds_behind: int | None
    last_error: str
    gtid_slave_pos: str


def read_status(ctx: Context) -> Status:
    with connect(ctx) as conn:
        require_mysql(conn, "replication")
        rows = conn.dicts("SHOW SLAVE STATUS")
        if not rows:
            raise PluginError(f"{where(database_url(ctx))} is not a replica "
                              "(SHOW SLAVE STATUS is empty)")
        r = rows[0]
        pos, _ = timed(conn, "SELECT @@GLOBAL.gtid_slave_pos")
    errors = [str(r.get(k) or "") for k in ("Last_IO_Error", "Last_SQL_Error")]
    sbm = r.get("Seconds_Behind_Master")
    return Status(str(r.get("Slave_IO_Running")), str(r.get("Slave_SQL_Running")),
                  None if sbm is None else int(sbm), "; ".join(e for e in errors if e),
                  str(pos[0][0] or ""))


def gtid_seqs(pos: str) -> dict[int, int]:
    """{domain: highest seq_no} of a GTID position like ``0-1-100,1-2-7``."""
    out: dict[int, int] = {}
    for part in pos.replace(" ", "").split(","):
        if part:
            domain, _server, seq = part.split("-")
            out[int(domain)] = max(out.get(int(domain), 0), int(seq))
    return out


def gtid_lag(master_pos: str, replica_pos: str) -> int:
    m, r = gtid_seqs(master_pos), gtid_seqs(replica_pos)
    return sum(max(0, seq - r.get(d, 0)) for d, seq in m.items())


class Replication(Plugin):
    name = "replication"
    title = "Replica IO/SQL threads running and lag behind the master"
    label = "lag"
    uom = "s"
    warning = "60"
    critical = "300"

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("-U", "--url", metavar="URL",
                            help="the replica's SQLAlchemy URL without password "
                                 "(default [Master] URL: the local database)")
        parser.add_argument("--master-url", metavar="URL",
                            help="the master's URL, to compare GTID positions as well")

    def probe(self, ctx: Context) -> Reading:
        st = read_status(ctx)
        extra: list[Perfdata] = []
        lag_text = ""
        if ctx.args.master_url:
            with connect(ctx, ctx.args.master_url) as conn:
                rows, _ = timed(conn, "SELECT @@GLOBAL.gtid_binlog_pos")
            lag_tx = gtid_lag(str(rows[0][0] or ""), st.gtid_slave_pos)
            extra.append(Perfdata("gtid_lag", lag_tx, min=0))
            lag_text = f", {lag_tx} transactions behind by GTID"
        problems = []
        if st.io_running != "Yes":
            problems.append(f"IO thread {st.io_running}")
        if st.sql_running != "Yes":
            problems.append(f"SQL thread {st.sql_running}")
        if st.seconds_behind is None and not problems:
            problems.append("lag unknown")
        lag = st.seconds_behind if st.seconds_behind is not None else 0
        if problems:
            text = "replication broken: " + ", ".join(problems)
            if st.last_error:
                text += f" ({st.last_error})"
            return Reading(lag, text + lag_text, min=0, state=CRITICAL,
                           perf=st.seconds_behind is not None, extra=extra)
        return Reading(lag, f"IO and SQL threads running, {lag}s behind the master{lag_text}",
                       min=0, extra=extra)


PLUGIN = Replication

if __name__ == "__main__":
    sys.exit(Replication.main())
