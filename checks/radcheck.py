"""radcheck's last self-test: its result and how old it is (from radcheck's state file).

A restart by radcheck repairs a hung engine within a minute or two, before
any other service turns red; so that the NOC sees it happened, the service is
WARNING for ``--restart-warning`` seconds after radcheck's last restart of the
engine (even once the self-test passes again), and ``restarts`` (a counter)
is in the perfdata for graphs.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from checks.perfdata import Perfdata
from checks.plugin import CRITICAL, OK, WARNING, Context, Plugin, PluginError, Reading, TargetDown


class Radcheck(Plugin):
    name = "radcheck"
    title = "radcheck self-test: last result and its age"
    label = "age"
    uom = "s"
    warning = "180"
    critical = "300"
    remote = False

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("--state-file", metavar="PATH",
                            help="radcheck's state file (default [Self Test] State_File, "
                                 "else <[Site] State_Dir>/radcheck.json)")
        parser.add_argument("--restart-warning", metavar="SECONDS", type=float, default=3600.0,
                            help="WARNING for this long after radcheck restarted the engine "
                                 "(default 3600; 0: never)")

    def probe(self, ctx: Context) -> Reading:
        from vigil.statefile import CorruptStateError, read_json

        path = self._path(ctx)
        try:
            st = read_json(path)
        except CorruptStateError as exc:
            raise PluginError(str(exc)) from None
        except OSError as exc:
            raise PluginError(f"cannot read {path}: {exc.strerror}") from None
        if st is None:
            raise TargetDown(f"no radcheck state at {path}: radcheck has not run")
        if not isinstance(st, dict) or not isinstance(st.get("time"), int | float):
            raise PluginError(f"{path}: not radcheck's state (no time)")
        age = max(0.0, time.time() - st["time"])
        fails = int(st.get("consecutive_failures") or 0)
        restarts = int(st.get("restarts") or 0)
        extra = [Perfdata("consecutive_failures", fails, min=0),
                 Perfdata("restarts", restarts, "c", min=0)]
        if isinstance(st.get("rtt_ms"), int | float):
            extra.insert(0, Perfdata("rtt", round(st["rtt_ms"] / 1000, 6), "s", min=0))
        if st.get("ok"):
            text = f"last self-test passed {age:.0f}s ago"
            if isinstance(st.get("rtt_ms"), int | float):
                text += f" in {st['rtt_ms']:.1f} ms"
            state = OK
            restarted = st.get("last_restart")
            window = max(0.0, float(ctx.args.restart_warning or 0.0))
            if isinstance(restarted, int | float) and not isinstance(restarted, bool):
                since = max(0.0, time.time() - restarted)
                if since < window:
                    state = WARNING
                    text += (f"; radcheck restarted {st.get('program') or 'the engine'} "
                             f"{since:.0f}s ago ({restarts} restarts in all)")
            return Reading(round(age, 1), text, min=0, state=state, extra=extra)
        err = st.get("last_error") or "no reason recorded"
        text = (f"last self-test failed {age:.0f}s ago ({fails} in a row, {restarts} engine "
                f"restarts): {err}")
        return Reading(round(age, 1), text, min=0, state=CRITICAL, extra=extra)

    @staticmethod
    def _path(ctx: Context) -> Path:
        if ctx.args.state_file:
            return Path(ctx.args.state_file)
        if ctx.option("Self Test", "State_File", ""):
            return ctx.config().path("Self Test", "State_File")
        return ctx.site_state_dir() / "radcheck.json"


PLUGIN = Radcheck

if __name__ == "__main__":
    sys.exit(Radcheck.main())
