"""Disk used by the database's binary logs (SHOW BINARY LOGS), in MB."""

from __future__ import annotations

import argparse
import sys

from checks.db import add_db_arguments, connect, database_url, require_mysql, timed, where
from checks.db_connections import not_applicable
from checks.perfdata import Perfdata
from checks.plugin import Context, Plugin, PluginError, Reading


class BinlogDisk(Plugin):
    name = "binlog_disk"
    title = "Disk used by the database's binary logs"
    label = "binlogs"
    uom = "MB"
    # The source sizes 50 GB for binary logs; warn at 80 % of that.
    warning = "40000"
    critical = "50000"

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        add_db_arguments(parser)

    def probe(self, ctx: Context) -> Reading:
        import pymysql

        with connect(ctx) as conn:
            if conn.dialect == "sqlite" and not ctx.args.url:
                return not_applicable()
            require_mysql(conn, "binlog_disk")
            try:
                rows, _ = timed(conn, "SHOW BINARY LOGS")
            except pymysql.MySQLError as exc:
                if exc.args and exc.args[0] == 1381:  # ER_NO_BINARY_LOGGING
                    raise PluginError(f"binary logging is off on {where(database_url(ctx))}; "
                                      "this check does not apply") from None
                raise
        total = sum(int(r[1]) for r in rows)
        mb = total / 1e6
        return Reading(round(mb, 3), f"{len(rows)} binary logs use {mb:.1f} MB", min=0,
                       extra=[Perfdata("binlog_files", len(rows), min=0)])


PLUGIN = BinlogDisk

if __name__ == "__main__":
    sys.exit(BinlogDisk.main())
