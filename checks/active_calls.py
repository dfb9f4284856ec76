"""Calls in progress (rows of active_calls), how many look abandoned, and
each customer's calls against its concurrent-call limit (max_calls)."""

from __future__ import annotations

import argparse
import sys

from checks.db import add_db_arguments, connect, timed, utc_since
from checks.perfdata import Perfdata
from checks.plugin import CRITICAL, OK, WARNING, Context, Plugin, Reading


def _percent(text: str) -> float:
    value = float(text)
    if not 0 < value <= 1000:
        raise argparse.ArgumentTypeError(f"{text!r}: a percentage above 0 is required")
    return value


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
        parser.add_argument("--limit-warning", type=_percent, default=80, metavar="PCT",
                            help="WARNING when a customer's calls reach this %% of its "
                                 "max_calls (default 80)")
        parser.add_argument("--limit-critical", type=_percent, default=100, metavar="PCT",
                            help="CRITICAL when they reach this %% (default 100: at or over "
                                 "the limit, so the next call is refused)")
        parser.add_argument("--top", type=int, default=5, metavar="N",
                            help="perfdata for the N customers nearest their limit "
                                 "(default 5; the worst ratio is always given)")

    def probe(self, ctx: Context) -> Reading:
        a = ctx.args
        with connect(ctx) as conn:
            rows, _ = timed(conn, "SELECT COUNT(*), SUM(CASE WHEN updated_at < :stale "
                            "THEN 1 ELSE 0 END) FROM active_calls WHERE leg <> 'funds_lock'",
                            {"stale": utc_since(a.stale)})
            limits, _ = timed(conn, "SELECT name, calls, max_calls FROM customers "
                              "WHERE max_calls IS NOT NULL")
        count, stale = int(rows[0][0] or 0), int(rows[0][1] or 0)
        text = f"{count} calls in progress"
        if stale:
            text += f", {stale} not updated for {a.stale:g} min"
        # A limit of 0 bars the customer: nothing up is fine, any call is far over.
        loads = sorted(((100.0 * int(c or 0) / int(mx) if int(mx) else
                         (0.0 if not c else 1000.0), str(n), int(c or 0), int(mx))
                        for n, c, mx in limits), reverse=True)
        state = OK
        extra = [Perfdata("stale", stale, min=0)]
        if loads:
            pct, name, calls, mx = loads[0]
            state = CRITICAL if pct >= a.limit_critical else \
                WARNING if pct >= a.limit_warning else OK
            over = [f"{n} {c}/{m}" for p, n, c, m in loads if p >= a.limit_warning]
            if over:
                text += "; near or at their call limit: " + ", ".join(over[:5])
                if len(over) > 5:
                    text += f" and {len(over) - 5} more"
            else:
                text += f"; busiest customer {name} {calls}/{mx} calls"
            extra.append(Perfdata("worst_limit", round(pct, 1), "%", min=0))
            for _p, n, c, m in loads[:max(0, a.top)]:
                extra.append(Perfdata(f"calls_{n}", c, min=0, max=m))
        return Reading(count, text, min=0, state=state, extra=extra)


PLUGIN = ActiveCalls

if __name__ == "__main__":
    sys.exit(ActiveCalls.main())
