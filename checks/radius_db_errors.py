"""Database errors the RADIUS engine met since the last run (each one is a request not served)."""

from __future__ import annotations

import argparse
import sys

from checks.counters import add_stats_arguments, counter_delta
from checks.plugin import Context, Plugin, Reading


class RadiusDbErrors(Plugin):
    name = "radius_db_errors"
    title = "Database errors met by the RADIUS engine since the last run"
    label = "db_errors"
    warning = "0"
    critical = "10"
    remote = False

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        add_stats_arguments(parser)

    def probe(self, ctx: Context) -> Reading:
        d = counter_delta(ctx, ("db_errors",))
        if d.first:
            return Reading(0, f"{d.note}; count from the next run on", perf=False, judge=False)
        n = d.values["db_errors"]
        text = f"{n} database errors in {d.seconds:.0f}s"
        if d.restarted:
            text += ", engine restarted"
        return Reading(n, text, min=0)


PLUGIN = RadiusDbErrors

if __name__ == "__main__":
    sys.exit(RadiusDbErrors.main())
