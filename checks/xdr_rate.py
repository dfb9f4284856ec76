"""xDR insert rate: account_xdrs rows created per minute over a window."""

from __future__ import annotations

import argparse
import sys

from checks.db import add_db_arguments, connect, timed, utc_since
from checks.perfdata import Perfdata
from checks.plugin import Context, Plugin, Reading


def add_window_argument(parser: argparse.ArgumentParser, default: int) -> None:
    parser.add_argument("--window", type=float, default=default, metavar="MIN",
                        help=f"look back this many minutes (default {default})")


class XdrRate(Plugin):
    name = "xdr_rate"
    title = "Account xDRs written per minute over a window"
    label = "xdrs_per_min"
    # Zero is normal on a quiet appliance; set e.g. -w 1: on a busy one.
    warning = ""
    critical = ""

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        add_db_arguments(parser)
        add_window_argument(parser, 15)

    def probe(self, ctx: Context) -> Reading:
        window = ctx.args.window
        with connect(ctx) as conn:
            rows, _ = timed(conn, "SELECT COUNT(*) FROM account_xdrs WHERE created_at >= :since",
                            {"since": utc_since(window)})
        count = int(rows[0][0])
        rate = count / window
        return Reading(round(rate, 3), f"{rate:.2f} xDRs/min ({count} in the last "
                       f"{window:g} min)", min=0,
                       extra=[Perfdata("xdrs", count, min=0)])


PLUGIN = XdrRate

if __name__ == "__main__":
    sys.exit(XdrRate.main())
