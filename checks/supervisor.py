"""Supervised programs not running (XML-RPC on supervisord's unix socket)."""

from __future__ import annotations

import argparse
import sys

from checks.perfdata import Perfdata
from checks.plugin import Context, Plugin, PluginError, Reading, TargetDown


def socket_from_conf(path: str) -> str:
    """``[unix_http_server] file=`` of a supervisord.conf, with supervisor's
    ``%(ENV_NAME)s`` expansions taken from this environment."""
    import configparser
    import os
    import re

    parser = configparser.RawConfigParser()
    try:
        with open(path, encoding="utf-8") as fh:
            parser.read_file(fh)
        value = parser.get("unix_http_server", "file")
    except OSError as exc:
        raise PluginError(f"cannot read {path}: {exc.strerror}") from None
    except configparser.Error as exc:
        raise PluginError(f"{path}: no [unix_http_server] file= ({exc.message})") from None

    def env(m: re.Match[str]) -> str:
        name = m.group(1)
        if name not in os.environ:
            raise PluginError(f"{path}: file= uses %(ENV_{name})s but {name} is not set")
        return os.environ[name]

    return re.sub(r"%\(ENV_([A-Za-z0-9_]+)\)s", env, value.split(";")[0].strip())


class Supervisor(Plugin):
    name = "supervisor"
    title = "Programs under supervisord that are not RUNNING"
    label = "not_running"
    warning = ""
    critical = "0"

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        where = parser.add_mutually_exclusive_group()
        where.add_argument("-S", "--socket", metavar="PATH",
                           help="supervisord's XML-RPC unix socket (default [Supervisor] "
                                "Socket_File, else <[Site] State_Dir>/supervisor.sock)")
        where.add_argument("-C", "--supervisord-conf", metavar="FILE",
                           help="take the socket from this supervisord.conf's "
                                "[unix_http_server] file= (%%(ENV_X)s expanded)")
        parser.add_argument("-P", "--program", action="append", default=[], metavar="NAME",
                            help="only these programs (repeat; group:name or name)")

    def probe(self, ctx: Context) -> Reading:
        from vigil.supervisor_client import Supervisor as Client
        from vigil.supervisor_client import SupervisorError, SupervisorUnavailable

        if ctx.args.supervisord_conf:
            sock = socket_from_conf(ctx.args.supervisord_conf)
        else:
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
        from vigil.supervisor_client import supervisor_socket

        try:
            return supervisor_socket(ctx.config())
        except Exception as exc:  # a ConfigError from a bad [Supervisor] value
            raise PluginError(str(exc)) from None


PLUGIN = Supervisor

if __name__ == "__main__":
    sys.exit(Supervisor.main())
