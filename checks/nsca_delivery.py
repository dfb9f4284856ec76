"""Age of the last delivery to each central server while results wait for it."""

from __future__ import annotations

import sys
import time

from checks.perfdata import Perfdata
from checks.plugin import Context, Plugin, Reading
from checks.spool import ago, destinations, spool_state


class NscaDelivery(Plugin):
    name = "nsca_delivery"
    title = "Seconds a central server has had results waiting and received none"
    label = "stalled"
    uom = "s"
    # The central Nagios turns everything CRITICAL after 180 s of silence:
    # warn well before that.
    warning = "60"
    critical = "150"
    remote = False

    def probe(self, ctx: Context) -> Reading:
        spool, names = destinations(ctx)
        now = time.time()
        states = spool_state(spool, names)
        worst = max(states, key=lambda s: s.stalled_for(now))
        parts = []
        for s in states:
            part = f"{s.name}: last delivery {ago(s.last_delivery, now)}"
            if s.backlog:
                part += f", {s.backlog} waiting for {s.stalled_for(now):.0f}s"
            else:
                part += ", caught up"
            parts.append(part)
        return Reading(round(worst.stalled_for(now), 1), "; ".join(parts), min=0,
                       extra=[Perfdata(f"stalled_{s.name}", round(s.stalled_for(now), 1), "s",
                                       min=0) for s in states])


PLUGIN = NscaDelivery

if __name__ == "__main__":
    sys.exit(NscaDelivery.main())
