"""Calls in progress (rows of active_calls), and how many look abandoned."""

from __future__ import annotations

import argparse
import sys

from checks.db import add_db_arguments, connect, timed, utc_since
from checks.perfdata import Perfdata
from checks.plugin import Context, Plugin, Reading


class ActiveCalls(Plugin):
    name = "active_calls"
    title = "Calls in progress"
    label = "calls"
    # capacity is site-specific: set -w/-c to the licensed or sized call count
    warning = ""
    critical = ""

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        add_db_arguments(parser)
        parser.add_argument("--stale", type=float, default=10, metavar="MIN",
                            help="a call not updated for this long counts as stale "
                                 "(shown, not judged; default 10)")

    def probe(self, ctx: Context) -> Reading:
        with connect(ctx) as conn:
            rows, _ = timed(conn, "SELECT COUNT(*), SUM(CASE WHEN updated_at < :stale "
                            "THEN 1 ELSE 0 END) FROM active_calls",
                            {"stale": utc_since(ctx.args.stale)})
        count, stale = int(rows[0][0] or 0), int(rows[0][1] or 0)
        text = f"{count} calls in progress"
        if stale:
            text += f", {stale} not updated for {ctx.args.stale:g} min"
        return Reading(count, text, min=0, extra=[Perfdata("stale", stale, min=0)])


PLUGIN = ActiveCalls

if __name__ == "__main__":
    sys.exit(ActiveCalls.main())
