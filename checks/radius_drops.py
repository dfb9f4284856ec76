"""RADIUS packets the engine dropped (unknown NAS, bad authenticator, malformed) per minute.

``internal_error`` counts packets the engine's last-resort guard dropped (a
bug past billing/radius_decode.py): it should stay 0, so any is alerted on.
``overload`` counts requests left unanswered because the database look-ups
or the commit backlog were full (a slow or hung database, or more traffic
than the engine can commit): the gateways retry or fail over meanwhile.
"""

from __future__ import annotations

import argparse
import sys

from checks.counters import add_stats_arguments, counter_delta
from checks.perfdata import Perfdata
from checks.plugin import Context, Plugin, Reading

KINDS = ("dropped_unknown_nas", "dropped_bad_authenticator", "dropped_malformed",
         "dropped_internal_error", "dropped_overload")


class RadiusDrops(Plugin):
    name = "radius_drops"
    title = ("RADIUS packets dropped (unknown NAS, bad authenticator, malformed, overload) "
             "per minute")
    label = "dropped"
    warning = "1"
    critical = "30"
    remote = False

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        add_stats_arguments(parser)

    def probe(self, ctx: Context) -> Reading:
        d = counter_delta(ctx, KINDS)
        if d.first:
            return Reading(0, f"{d.note}; rate from the next run on", perf=False, judge=False)
        total = sum(d.values.values())
        rate = total * 60.0 / d.seconds if d.seconds > 0 else 0.0
        parts = ", ".join(f"{d.values[k]} {k.removeprefix('dropped_').replace('_', ' ')}"
                          for k in KINDS)
        text = f"{rate:.1f} dropped packets/min ({parts} in {d.seconds:.0f}s)"
        if d.restarted:
            text += ", engine restarted"
        return Reading(round(rate, 3), text, min=0,
                       extra=[Perfdata(k.removeprefix("dropped_"), d.values[k], "c", min=0)
                              for k in KINDS])


PLUGIN = RadiusDrops

if __name__ == "__main__":
    sys.exit(RadiusDrops.main())
