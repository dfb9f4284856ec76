"""The site watchdog's probe paths: how many do not see the primary.

Reads ``<State_Dir>/site-watchdog.json``, written by ``vigil site watchdog``
every probe round. The judged value is the number of paths that say the
primary is dead or cannot tell; a watchdog that stopped writing (older than
``--max-age``) is CRITICAL: nothing would switch this site.
"""

from __future__ import annotations

import argparse
import datetime as dt
import sys

from checks.perfdata import Perfdata
from checks.plugin import CRITICAL, Context, Plugin, PluginError, Reading, TargetDown
from checks.site_mode import not_a_secondary


class SiteProbes(Plugin):
    name = "site_probes"
    title = "Site watchdog probe paths not seeing the primary, and watchdog freshness"
    label = "paths_down"
    warning = "0"
    critical = "1"
    remote = False

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("--max-age", type=float, default=60, metavar="SEC",
                            help="CRITICAL when the watchdog has not written for this long")

    def probe(self, ctx: Context) -> Reading:
        from vigil import statefile

        unconfigured = not_a_secondary(ctx)
        if unconfigured is not None:
            return unconfigured
        path = ctx.site_state_dir() / "site-watchdog.json"
        try:
            st = statefile.read_json(path)
        except statefile.CorruptStateError as exc:
            raise PluginError(str(exc)) from None
        if st is None:
            raise TargetDown(f"{path} does not exist: the site watchdog has not run")
        if not isinstance(st, dict) or not isinstance(st.get("paths"), dict):
            raise PluginError(f"{path}: not a watchdog state")
        try:
            at = dt.datetime.fromisoformat(str(st.get("updated_at")))
        except ValueError:
            raise PluginError(f"{path}: bad updated_at") from None
        age = (dt.datetime.now(dt.UTC).replace(tzinfo=None) - at).total_seconds()
        paths = st["paths"]
        down = sorted(k for k, v in paths.items() if (v or {}).get("verdict") != "alive")
        why = ", ".join("{} ({})".format(k, (paths[k] or {}).get("detail", "")) for k in down)
        text = (f"{len(paths) - len(down)}/{len(paths)} paths see the primary"
                + (f"; not: {why}" if down else "") + f"; {st.get('summary', '')}")
        extra = [Perfdata("age", round(age, 1), "s", min=0)]
        if age > ctx.args.max_age:
            return Reading(len(down), f"watchdog silent for {age:.0f}s; last: {text}"[:400],
                           min=0, state=CRITICAL, extra=extra)
        return Reading(len(down), text[:400], min=0, max=len(paths), extra=extra)


PLUGIN = SiteProbes

if __name__ == "__main__":
    sys.exit(SiteProbes.main())
