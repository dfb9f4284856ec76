"""Duplicate accounting requests (retransmits of records already committed) per minute."""

from __future__ import annotations

import argparse
import sys

from checks.counters import add_stats_arguments, counter_delta
from checks.perfdata import Perfdata
from checks.plugin import Context, Plugin, Reading


class AcctDuplicates(Plugin):
    name = "acct_duplicates"
    title = "Duplicate accounting requests per minute since the last run"
    label = "duplicates"
    warning = "10"
    critical = "60"
    remote = False

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        add_stats_arguments(parser)

    def probe(self, ctx: Context) -> Reading:
        d = counter_delta(ctx, ("accounting_duplicates", "accounting_requests"))
        if d.first:
            return Reading(0, f"{d.note}; rate from the next run on", perf=False, judge=False)
        dup, req = d.values["accounting_duplicates"], d.values["accounting_requests"]
        rate = d.per_minute("accounting_duplicates")
        text = f"{rate:.1f} duplicate accountings/min ({dup} of {req} requests in {d.seconds:.0f}s)"
        if d.restarted:
            text += ", engine restarted"
        return Reading(round(rate, 3), text, min=0,
                       extra=[Perfdata("accounting_requests", req, "c", min=0)])


PLUGIN = AcctDuplicates

if __name__ == "__main__":
    sys.exit(AcctDuplicates.main())
