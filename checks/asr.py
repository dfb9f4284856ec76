"""ASR (answer-seizure ratio): connected calls among all attempts over a window, in percent."""

from __future__ import annotations

import argparse
import sys

from checks.calls import call_stats
from checks.db import add_db_arguments
from checks.perfdata import Perfdata
from checks.plugin import Context, Plugin, Reading
from checks.xdr_rate import add_window_argument


class Asr(Plugin):
    name = "asr"
    title = "Answer-seizure ratio (connected / all calls) over a window"
    label = "asr"
    uom = "%"
    # The industry norm is about 50 %; far below it, routes or a vendor are failing.
    warning = "30:"
    critical = "15:"

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        add_db_arguments(parser)
        add_window_argument(parser, 30)
        parser.add_argument("--min-calls", type=int, default=20, metavar="N",
                            help="fewer calls than this are too few to judge (default 20)")

    def probe(self, ctx: Context) -> Reading:
        st = call_stats(ctx, ctx.args.window)
        asr = 100.0 * st.connected / st.calls if st.calls else 0.0
        text = (f"ASR {asr:.1f}% ({st.connected} of {st.calls} calls connected in the last "
                f"{ctx.args.window:g} min)")
        few = st.calls < ctx.args.min_calls
        if few:
            text += f"; fewer than {ctx.args.min_calls} calls, not judged"
        return Reading(round(asr, 2), text, min=0, max=100, judge=not few, perf=st.calls > 0,
                       extra=[Perfdata("calls", st.calls, min=0)])


PLUGIN = Asr

if __name__ == "__main__":
    sys.exit(Asr.main())
