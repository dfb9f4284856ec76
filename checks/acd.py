"""ACD (average call duration) of connected calls over a window, in seconds."""

from __future__ import annotations

import argparse
import sys

from checks.calls import call_stats
from checks.db import add_db_arguments
from checks.perfdata import Perfdata
from checks.plugin import Context, Plugin, Reading
from checks.xdr_rate import add_window_argument


class Acd(Plugin):
    name = "acd"
    title = "Average duration of connected calls over a window"
    label = "acd"
    uom = "s"
    # Very short calls en masse: one-way audio, a broken route, or fraud testing.
    warning = "30:"
    critical = "10:"

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        add_db_arguments(parser)
        add_window_argument(parser, 30)
        parser.add_argument("--min-calls", type=int, default=10, metavar="N",
                            help="fewer connected calls than this are too few to judge "
                                 "(default 10)")

    def probe(self, ctx: Context) -> Reading:
        st = call_stats(ctx, ctx.args.window)
        text = (f"ACD {st.mean_duration:.0f}s over {st.connected} connected calls in the last "
                f"{ctx.args.window:g} min")
        few = st.connected < ctx.args.min_calls
        if few:
            text += f"; fewer than {ctx.args.min_calls}, not judged"
        return Reading(round(st.mean_duration, 1), text, min=0, judge=not few,
                       perf=st.connected > 0,
                       extra=[Perfdata("connected_calls", st.connected, min=0)])


PLUGIN = Acd

if __name__ == "__main__":
    sys.exit(Acd.main())
