"""The secondary site's mode: OK in stand-by, CRITICAL in stand-alone.

Reads ``<State_Dir>/site-mode.json`` (written by the watchdog, ``vigil site
standalone`` and failback). The judged value is the seconds spent in
stand-alone (0 in stand-by), so a grapher shows how long an outage lasted.
A corrupt mode file is UNKNOWN: the engine treats it as stand-by.
"""

from __future__ import annotations

import datetime as dt
import sys

from checks.plugin import CRITICAL, Context, Plugin, PluginError, Reading


def not_a_secondary(ctx: Context) -> Reading | None:
    """OK "not configured" where no secondary site runs (the primary, the central
    server, the all-in-one demo): there is no watchdog, delta or failback to judge,
    and a CRITICAL about a missing watchdog would page on-call about nothing."""
    role = ctx.config().get("Site", "Role")
    if role == "secondary":
        return None
    return Reading(0, f"not configured: [Site] Role is {role}; the site watchdog, the delta "
                      "database and failback run on a secondary site", judge=False, perf=False)


class SiteMode(Plugin):
    name = "site_mode"
    title = "Secondary site mode: stand-by (OK) or stand-alone (CRITICAL)"
    label = "standalone"
    uom = "s"
    remote = False

    def probe(self, ctx: Context) -> Reading:
        from vigil import site_mode as modes
        from vigil import statefile

        unconfigured = not_a_secondary(ctx)
        if unconfigured is not None:
            return unconfigured
        path = modes.mode_path(ctx.site_state_dir())
        try:
            m = modes.read(path)
        except statefile.CorruptStateError as exc:
            raise PluginError(str(exc)) from None
        except OSError as exc:
            raise PluginError(f"cannot read {path}: {exc.strerror}") from None
        if not m.standalone:
            extra = f", last failback {m.last_failback}" if m.last_failback else ""
            return Reading(0, f"stand-by since {m.since or 'install'}{extra}", min=0)
        try:
            since = dt.datetime.fromisoformat(m.since)
            held = max(0.0, (dt.datetime.now(dt.UTC).replace(tzinfo=None) - since
                             ).total_seconds())
        except ValueError:
            held = 0.0
        return Reading(round(held), f"STAND-ALONE since {m.since} ({held / 60:.0f} min, by "
                       f"{m.by}): {m.reason}", min=0, state=CRITICAL)


PLUGIN = SiteMode

if __name__ == "__main__":
    sys.exit(SiteMode.main())
