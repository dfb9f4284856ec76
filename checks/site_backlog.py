"""Stand-alone xDRs not yet transferred to the primary (the failback backlog).

Asks the delta database and the primary's failback watermark (``[Delta]``,
``[Standby] Primary_URL``). Growing in stand-alone is expected; a backlog
in stand-by means a failback stopped half-way: run ``vigil site failback``.
"""

from __future__ import annotations

import sys

from checks.perfdata import Perfdata
from checks.plugin import Context, Plugin, PluginError, Reading, TargetDown
from checks.site_mode import not_a_secondary


class SiteBacklog(Plugin):
    name = "site_backlog"
    title = "Stand-alone xDRs waiting for failback to the primary"
    label = "pending"
    warning = "0"
    critical = "100000"

    def probe(self, ctx: Context) -> Reading:
        from redundancy.site.failback import FailbackError, from_config

        unconfigured = not_a_secondary(ctx)
        if unconfigured is not None:
            return unconfigured
        try:
            b = from_config(ctx.config()).backlog()
        except FailbackError as exc:
            if exc.unavailable:
                raise TargetDown(str(exc)) from None
            raise PluginError(str(exc)) from None
        text = (f"{b.pending_xdrs} xDR(s) pending transfer to the primary (delta up to "
                f"{b.delta_max}, transferred up to {b.transferred_upto}); funds locked on "
                f"{b.locked_accounts} account(s), total {b.locked_total}")
        return Reading(b.pending_xdrs, text, min=0,
                       extra=[Perfdata("locked_accounts", b.locked_accounts, min=0)])


PLUGIN = SiteBacklog

if __name__ == "__main__":
    sys.exit(SiteBacklog.main())
