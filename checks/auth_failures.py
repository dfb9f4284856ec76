"""Failed-authentication ratio: Access-Rejects among the engine's answers since the last run."""

from __future__ import annotations

import argparse
import sys

from checks.counters import add_stats_arguments, counter_delta
from checks.perfdata import Perfdata
from checks.plugin import Context, Plugin, Reading


class AuthFailures(Plugin):
    name = "auth_failures"
    title = "Failed-authentication ratio (Access-Reject / answers) since the last run"
    label = "rejected"
    uom = "%"
    warning = "20"
    critical = "50"
    remote = False

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        add_stats_arguments(parser)
        parser.add_argument("--min-requests", type=int, default=10, metavar="N",
                            help="fewer answers than this are too few to judge (default 10)")

    def probe(self, ctx: Context) -> Reading:
        d = counter_delta(ctx, ("access_accepts", "access_rejects"))
        if d.first:
            return Reading(0, f"{d.note}; ratio from the next run on", perf=False, judge=False)
        acc, rej = d.values["access_accepts"], d.values["access_rejects"]
        total = acc + rej
        pct = 100.0 * rej / total if total else 0.0
        text = f"{pct:.1f}% rejected ({rej} of {total} in {d.seconds:.0f}s)"
        if d.restarted:
            text += ", engine restarted"
        few = total < ctx.args.min_requests
        if few:
            text += f"; fewer than {ctx.args.min_requests} answers, not judged"
        return Reading(round(pct, 2), text, min=0, max=100, judge=not few,
                       extra=[Perfdata("rejects", rej, "c", min=0),
                              Perfdata("accepts", acc, "c", min=0)])


PLUGIN = AuthFailures

if __name__ == "__main__":
    sys.exit(AuthFailures.main())
