"""Database connections in use: Threads_connected as a share of max_connections."""

from __future__ import annotations

import argparse
import sys

from checks.db import add_db_arguments, connect, database_url, require_mysql, timed, where
from checks.perfdata import Perfdata
from checks.plugin import Context, Plugin, PluginError, Reading


class DbConnections(Plugin):
    name = "db_connections"
    title = "Database connections in use (Threads_connected / max_connections)"
    label = "connections_used"
    uom = "%"
    warning = "80"
    critical = "90"

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        add_db_arguments(parser)

    def probe(self, ctx: Context) -> Reading:
        with connect(ctx) as conn:
            if conn.dialect == "sqlite" and not ctx.args.url:
                return not_applicable()
            require_mysql(conn, "db_connections")
            status, _ = timed(conn, "SHOW GLOBAL STATUS LIKE 'Threads_connected'")
            limit, _ = timed(conn, "SHOW GLOBAL VARIABLES LIKE 'max_connections'")
        if not status or not limit:
            raise PluginError("the server did not report Threads_connected/max_connections")
        used, top = int(status[0][1]), int(limit[0][1])
        pct = 100.0 * used / top
        return Reading(round(pct, 2), f"{used} of {top} connections in use ({pct:.1f}%) on "
                       f"{where(database_url(ctx))}", min=0, max=100,
                       extra=[Perfdata("connections", used, min=0, max=top)])


def not_applicable() -> Reading:
    """The embedded SQLite database has no server, connections or binary logs."""
    return Reading(0, "not applicable: the billing database is the embedded SQLite",
                   judge=False, perf=False)


PLUGIN = DbConnections

if __name__ == "__main__":
    sys.exit(DbConnections.main())
