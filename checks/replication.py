"""Replica health: IO and SQL threads running, and how far behind the master it is.

Reads ``redundancy.replication.status.replica_status`` (the replication
room's one look at both servers, see interfaces.md), connecting as
``[Replication]`` says (``User``/``Password`` or ``Option_File``; the replica
and master addresses can be overridden with ``--replica``/``--master``).

A stopped thread, a replication error, errant transactions on the replica or
an unreachable master is CRITICAL whatever the thresholds say. The judged
``lag`` is the heartbeat lag when the heartbeat table is written, else
``Seconds_Behind_Master``; GTID transactions behind (the master's
``gtid_binlog_pos`` against the replica's ``gtid_slave_pos``) go in the text
and perfdata, since ``Seconds_Behind_Master`` reads 0 right after START
SLAVE while far behind.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys

from checks.perfdata import Perfdata
from checks.plugin import CRITICAL, Context, Plugin, PluginError, Reading, TargetDown


class Replication(Plugin):
    name = "replication"
    title = "Replica IO/SQL threads running and lag behind the master"
    label = "lag"
    uom = "s"
    warning = "60"
    critical = "300"

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("--replica", metavar="HOST:PORT",
                            help="the replica (default [Replication] Replica_Host:Port)")
        parser.add_argument("--master", metavar="HOST:PORT",
                            help="the master (default [Replication] Master_Host:Port)")
        parser.add_argument("--no-master", action="store_true",
                            help="do not ask the master (no GTID lag, no errant check)")

    def probe(self, ctx: Context) -> Reading:
        from redundancy.replication.errors import AccessDenied, ReplicationError
        from redundancy.replication.server import params_from_config, parse_address
        from redundancy.replication.status import replica_status

        # The all-in-one demo and SQLite sites have no replica: an absent one there is
        # "not configured", not CRITICAL (which paged on-call every hour about nothing).
        # A replica that answers is still checked; MySQL/MariaDB sites always are.
        embedded = not ctx.args.replica and not master_is_mysql(ctx)
        cfg = ctx.config()
        try:
            pair = params_from_config(cfg, ctx.args.replica)
            if ctx.args.master:
                host, port = parse_address(ctx.args.master)
                pair = dataclasses.replace(pair, master=dataclasses.replace(
                    pair.master, host=host, port=port))
        except ReplicationError as exc:
            raise PluginError(str(exc)) from None
        except Exception as exc:  # a ConfigError naming the bad [Replication] value
            raise PluginError(str(exc)) from None
        left = ctx.remaining()
        pair = dataclasses.replace(
            pair,
            replica=dataclasses.replace(pair.replica, connect_timeout=min(
                pair.replica.connect_timeout, left / 2), read_timeout=left),
            master=dataclasses.replace(pair.master, connect_timeout=min(
                pair.master.connect_timeout, left / 2), read_timeout=left))
        heartbeat = ctx.option("Replication", "Heartbeat_Table", "vigil.heartbeat")
        try:
            st = replica_status(pair.replica if ctx.args.no_master else pair, heartbeat)
        except AccessDenied as exc:
            raise PluginError(_named(f"replica {pair.replica.address}", str(exc))) from None
        except ReplicationError as exc:  # ServerUnavailable: the replica does not answer
            if embedded:
                return Reading(0, "not configured: the billing database is the embedded "
                               f"SQLite ([Master] URL) and no replica answers at "
                               f"{pair.replica.address}", judge=False, perf=False)
            raise TargetDown(_named(f"replica {pair.replica.address}", str(exc))) from None
        if not st.configured:
            raise PluginError(f"{pair.replica.address} is not a replica "
                              "(SHOW SLAVE STATUS is empty)")
        extra: list[Perfdata] = []
        if st.seconds_behind is not None:
            extra.append(Perfdata("seconds_behind", st.seconds_behind, "s", min=0))
        details = []
        if st.gtid_lag_transactions is not None:
            extra.append(Perfdata("gtid_lag", st.gtid_lag_transactions, min=0))
            details.append(f"{st.gtid_lag_transactions} transactions behind by GTID")
        lag: float | None
        if st.heartbeat_lag_sec is not None:
            lag, source = st.heartbeat_lag_sec, "heartbeat"
        else:
            lag, source = st.seconds_behind, "Seconds_Behind_Master"
        problems = st.problems()
        if problems:
            text = "replication broken: " + "; ".join(problems)
            if details:
                text += ", " + ", ".join(details)
            return Reading(lag or 0, text, min=0, state=CRITICAL, perf=lag is not None,
                           extra=extra)
        if lag is None:
            return Reading(0, "IO and SQL threads running, lag unknown"
                           + "".join(f", {d}" for d in details), state=CRITICAL, perf=False,
                           extra=extra)
        text = f"IO and SQL threads running, {lag:.0f}s behind the master ({source})"
        if details:
            text += ", " + ", ".join(details)
        return Reading(round(lag, 3), text, min=0, extra=extra)


def master_is_mysql(ctx: Context) -> bool:
    """Replication exists only when the billing database is MySQL/MariaDB."""
    from checks.db import master_url_text

    try:
        return master_url_text(ctx).startswith(("mysql", "mariadb"))
    except Exception:  # a bad URL: let the probe say what is wrong with it
        return True


def _named(who: str, message: str) -> str:
    """``who: message`` unless the message already starts with ``who``."""
    return message if message.startswith(who) else f"{who}: {message}"


PLUGIN = Replication

if __name__ == "__main__":
    sys.exit(Replication.main())
