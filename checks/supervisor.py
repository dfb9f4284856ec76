"""Supervised programs not running (XML-RPC on supervisord's unix socket)."""

from __future__ import annotations

import argparse
import sys

from checks.perfdata import Perfdata
from checks.plugin import Context, Plugin, PluginError, Reading, TargetDown


class Supervisor(Plugin):
    name = "supervisor"
    title = "Programs under supervisord that are not RUNNING"
    label = "not_running"
    warning = ""
    critical = "0"

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("-S", "--socket", metavar="PATH",
                            help="supervisord's XML-RPC unix socket (default [Supervisor] "
                                 "Socket_File, else <[Site] State_Dir>/supervisor.sock)")
        parser.add_argument("-P", "--program", action="append", default=[], metavar="NAME",
                            help="only these programs (repeat; group:name or name)")

    def probe(self, ctx: Context) -> Reading:
        from vigil.supervisor_client import Supervisor as Client
        from vigil.supervisor_client import SupervisorError, SupervisorUnavailable

        sock = ctx.args.socket or str(self._socket(ctx))
        client = Client(sock, timeout=ctx.remaining())
        try:
            programs = client.programs()
        except SupervisorUnavailable as exc:
            raise TargetDown(str(exc)) from None
        except SupervisorError as exc:
            raise TargetDown(str(exc)) from None
        wanted = set(ctx.args.program)
        if wanted:
            programs = [p for p in programs if p.full_name in wanted or p.name in wanted]
            missing = wanted - {p.full_name for p in programs} - {p.name for p in programs}
            if missing:
                raise PluginError(f"supervisord has no program {', '.join(sorted(missing))}")
        down = [p for p in programs if p.state != "RUNNING"]
        if down:
            text = (f"{len(down)} of {len(programs)} programs not running: "
                    + ", ".join(f"{p.full_name} {p.state}" + (f" ({p.spawnerr})" if p.spawnerr
                                                              else "") for p in down))
        else:
            text = f"all {len(programs)} programs running"
        return Reading(len(down), text, min=0, max=len(programs),
                       extra=[Perfdata("programs", len(programs), min=0)])

    @staticmethod
    def _socket(ctx: Context) -> object:
        from vigil.supervisor_settings import supervisor_socket

        try:
            return supervisor_socket(ctx.config())
        except Exception as exc:  # a ConfigError from a bad [Supervisor] value
            raise PluginError(str(exc)) from None


PLUGIN = Supervisor

if __name__ == "__main__":
    sys.exit(Supervisor.main())
