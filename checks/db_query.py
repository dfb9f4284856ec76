"""Billing database reachable, and how long a connect plus a billing query takes."""

from __future__ import annotations

import argparse
import sys
import time

from checks.db import add_db_arguments, connect, database_url, timed, where
from checks.perfdata import Perfdata
from checks.plugin import Context, Plugin, Reading


class DbQuery(Plugin):
    name = "db_query"
    title = "Billing database reachable, and the time of a connect plus a billing query"
    label = "time"
    uom = "s"
    warning = "0.5"
    critical = "2"

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        add_db_arguments(parser)

    def probe(self, ctx: Context) -> Reading:
        url = database_url(ctx)
        start = time.monotonic()
        with connect(ctx) as conn:
            connected = time.monotonic() - start
            # an indexed read of the table every authorization reads
            _, query = timed(conn, "SELECT account_id FROM accounts ORDER BY id LIMIT 1")
        total = connected + query
        return Reading(round(total, 6), f"{where(url)} answered in {total * 1000:.1f} ms "
                       f"(query {query * 1000:.1f} ms)", min=0,
                       extra=[Perfdata("query_time", round(query, 6), "s", min=0)])


PLUGIN = DbQuery

if __name__ == "__main__":
    sys.exit(DbQuery.main())
