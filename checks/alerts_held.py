"""E-mail alerts held back by the flood limiter ([Email] Max_Sequential_Emails), or undelivered."""

from __future__ import annotations

import sys

from checks.perfdata import Perfdata
from checks.plugin import Context, Plugin, PluginError, Reading


class AlertsHeld(Plugin):
    name = "alerts_held"
    title = "Alert e-mails held back by the flood limiter or not delivered"
    label = "held"
    warning = "0"
    critical = "50"
    remote = False

    def probe(self, ctx: Context) -> Reading:
        from vigil.alerts import limiter_for
        from vigil.statefile import CorruptStateError

        cfg = ctx.config()
        try:
            limiter = limiter_for(cfg)
            held = limiter.held()
        except CorruptStateError as exc:
            raise PluginError(str(exc)) from None
        except OSError as exc:
            raise PluginError(f"cannot read the flood limiter's state: {exc}") from None
        total = held.count + held.undelivered
        if not total:
            return Reading(0, "no alerts held back", min=0,
                           extra=[Perfdata("undelivered", 0, min=0)])
        since = time_ago(held.since)
        text = (f"{held.count} alerts held back by the flood limit, {held.undelivered} "
                f"undelivered, since {since}")
        if held.subjects:
            text += f"; first: {held.subjects[0]}"
        return Reading(total, text, min=0,
                       extra=[Perfdata("undelivered", held.undelivered, min=0)])


def time_ago(t: float | None) -> str:
    import time

    if t is None:
        return "-"
    return f"{max(0.0, time.time() - t):.0f}s ago"


PLUGIN = AlertsHeld

if __name__ == "__main__":
    sys.exit(AlertsHeld.main())
