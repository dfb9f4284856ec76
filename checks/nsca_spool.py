"""NSCA spool backlog: results waiting for the central server that is furthest behind."""

from __future__ import annotations

import sys

from checks.perfdata import Perfdata
from checks.plugin import Context, Plugin, Reading
from checks.spool import destinations, spool_state


class NscaSpool(Plugin):
    name = "nsca_spool"
    title = "Results in the NSCA spool not yet delivered (worst central server)"
    label = "backlog"
    # One pass of a site is about 30 results a minute per server; a few
    # minutes' worth waiting means a central server is unreachable.
    warning = "500"
    critical = "5000"
    remote = False

    def probe(self, ctx: Context) -> Reading:
        spool, names = destinations(ctx)
        states = spool_state(spool, names)
        worst = max(states, key=lambda s: s.backlog)
        text = "; ".join(f"{s.name}: {s.backlog} waiting" for s in states)
        return Reading(worst.backlog, text, min=0,
                       extra=[Perfdata(f"backlog_{s.name}", s.backlog, min=0) for s in states])


PLUGIN = NscaSpool

if __name__ == "__main__":
    sys.exit(NscaSpool.main())
