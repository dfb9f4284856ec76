"""Subcommands for the supervised process tree and alerts.

- ``vigil supervisord``: run supervisord in the foreground on
  ``etc/supervisord.conf`` with the programs of ``[Site] Role``;
- ``vigil supervisorctl ARGS``: supervisorctl on the same socket;
- ``vigil status [--json]``: the programs and their states (XML-RPC);
- ``vigil alert send --subject S [--to ADDR] [--no-rate-limit]``: an alert, body on stdin.

``etc/supervisord.conf`` takes every path from the environment (supervisor's
``%(ENV_X)s`` expansion), which ``vigil supervisord`` derives from vigil.conf,
so the same file serves the appliance and ``make run``:

======================== ===================================================
VIGIL_CONF               absolute path of vigil.conf
VIGIL_BIN                the folder of the ``vigil`` command (the virtualenv)
VIGIL_STATE_DIR          ``[Site] State_Dir``
VIGIL_LOG_DIR            ``[Site] Log_Dir`` (one log per program)
VIGIL_SUPERVISOR_SOCKET  ``[Supervisor] Socket_File``
VIGIL_ROLE               ``[Site] Role``
VIGIL_PROGRAMS           the program files to include for that role
VIGIL_SMTP_HOST/PORT     ``[Email] SMTP_Host`` / ``SMTP_Port`` (demo mail sink)
======================== ===================================================
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time
from pathlib import Path
from typing import Any

from vigil import config
from vigil.cli import EXIT_FAILED, EXIT_OK, EXIT_UNAVAILABLE, EXIT_USAGE, CommandError
from vigil.supervisor_client import supervisor_socket

# Program files live in etc/supervisor/<group>/<program>.conf, one block each;
# a role runs the groups listed here. Adding a program = adding one file.
ROLE_GROUPS: dict[str, tuple[str, ...]] = {
    "primary": ("common", "site"),
    "secondary": ("common", "site", "secondary"),
    "central": ("common", "central"),
    "all": ("common", "site", "central"),
}
UNIX_PATH_MAX = 107  # sun_path is 108 bytes with the terminating NUL

# The master's heartbeat writer: primary (and all) when the billing database is MySQL/MariaDB.
REPLICATION_ROLES = ("primary", "all")


def program_groups(cfg: config.Config) -> list[str]:
    role = cfg.get("Site", "Role")
    groups = list(ROLE_GROUPS[role])
    url = str(cfg.get("Master", "URL"))
    if role in REPLICATION_ROLES and url.startswith(("mysql", "mariadb")):
        groups.append("replication")
    return groups


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("supervisord", help="run supervisord with this role's programs "
                       "(foreground; Ctrl-C or SIGTERM stops every program)")
    p.add_argument("--include", action="append", default=[], metavar="GLOB",
                   help="extra program files, relative to the supervisord.conf folder "
                        "(make run adds supervisor/demo/*.conf)")
    p.add_argument("--only", action="append", default=[], metavar="PROGRAM",
                   help="of the role's programs run only these (repeatable; for tests and "
                        "debugging)")
    p.add_argument("--print-env", action="store_true",
                   help="print the environment supervisord would get, and exit")
    p.set_defaults(func=cmd_supervisord)

    p = sub.add_parser("supervisorctl", help="supervisorctl on this appliance's socket")
    p.add_argument("args", nargs=argparse.REMAINDER, help="supervisorctl arguments")
    p.set_defaults(func=cmd_supervisorctl)

    p = sub.add_parser("status", help="supervised programs and their states")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=cmd_status)

    p = sub.add_parser("alert", help="e-mail alerts")
    alert_sub = p.add_subparsers(dest="alert_command", metavar="ACTION")
    alert_sub.required = True
    s = alert_sub.add_parser("send", help="send an alert; the body is read from stdin")
    s.add_argument("--subject", required=True, help="subject line")
    s.add_argument("--to", metavar="ADDR", help="recipient (default [Global] last_resort_email)")
    s.add_argument("--kind", default="alert", help="kind, shown in the X-Vigil-Kind header")
    s.add_argument("--no-rate-limit", action="store_true",
                   help="bypass the flood limit ([Email] Max_Sequential_Emails)")
    s.set_defaults(func=cmd_alert_send)


def _load(args: argparse.Namespace) -> config.Config:
    return config.load(args.config)


# ------------------------------------------------------------- supervisord

def supervisor_env(cfg: config.Config, includes: list[str] | None = None,
                   only: list[str] | None = None) -> dict[str, str]:
    if cfg.source.startswith("<"):
        raise CommandError("supervisord needs a configuration file (-c FILE or VIGIL_CONF)",
                           EXIT_USAGE)
    role = cfg.get("Site", "Role")
    sock = supervisor_socket(cfg)
    if len(str(sock).encode()) > UNIX_PATH_MAX:
        raise config.ConfigError(cfg.source, "Supervisor", "Socket_File",
                                 f"{sock} is longer than a unix socket path may be "
                                 f"({UNIX_PATH_MAX} bytes); set a shorter one")
    names = only or ["*"]
    files = [f"supervisor/{g}/{n}.conf" for g in program_groups(cfg) for n in names]
    files += list(includes or [])
    return {
        "VIGIL_CONF": str(Path(cfg.source).resolve()),
        "VIGIL_BIN": str(Path(sys.executable).parent),
        "VIGIL_STATE_DIR": str(cfg.path("Site", "State_Dir")),
        "VIGIL_LOG_DIR": str(cfg.path("Site", "Log_Dir")),
        "VIGIL_SUPERVISOR_SOCKET": str(sock),
        "VIGIL_ROLE": role,
        "VIGIL_PROGRAMS": " ".join(files),
        "VIGIL_SMTP_HOST": str(cfg.get("Email", "SMTP_Host")),
        "VIGIL_SMTP_PORT": str(cfg.get("Email", "SMTP_Port")),
    }


SHIPPED_SUPERVISORD_CONF = Path(__file__).resolve().parent.parent / "etc" / "supervisord.conf"


def supervisord_conf(cfg: config.Config) -> Path:
    """``[Supervisor] Config_File``; the shipped one if the default is not next to vigil.conf.

    An appliance keeps vigil.conf in /etc/vigil and the program files with the
    code, so the default ``supervisord.conf`` falls back to the source tree's.
    """
    conf = cfg.path("Supervisor", "Config_File")
    if conf.is_file():
        return conf
    if cfg.get("Supervisor", "Config_File") == "supervisord.conf" and \
            SHIPPED_SUPERVISORD_CONF.is_file():
        return SHIPPED_SUPERVISORD_CONF
    raise config.ConfigError(cfg.source, "Supervisor", "Config_File", f"{conf} does not exist")


def _tool(name: str) -> str:
    here = Path(sys.executable).parent / name
    found = str(here) if here.exists() else shutil.which(name)
    if not found:
        raise CommandError(f"{name} not found (pip install supervisor)", EXIT_UNAVAILABLE)
    return found


def cmd_supervisord(args: argparse.Namespace) -> int:
    cfg = _load(args)
    env = supervisor_env(cfg, args.include, args.only)
    if args.print_env:
        for k, v in env.items():
            print(f"{k}={v}")
        print(f"# supervisord -n -c {supervisord_conf(cfg)}")
        return EXIT_OK
    conf = supervisord_conf(cfg)
    for d in ("VIGIL_STATE_DIR", "VIGIL_LOG_DIR"):
        Path(env[d]).mkdir(parents=True, exist_ok=True)
    Path(env["VIGIL_SUPERVISOR_SOCKET"]).parent.mkdir(parents=True, exist_ok=True)
    exe = _tool("supervisord")
    sys.stdout.flush()
    os.execve(exe, [exe, "-n", "-c", str(conf)], {**os.environ, **env})
    return EXIT_FAILED  # not reached


def cmd_supervisorctl(args: argparse.Namespace) -> int:
    cfg = _load(args)
    env = supervisor_env(cfg)
    conf = supervisord_conf(cfg)
    exe = _tool("supervisorctl")
    rest = [a for a in args.args if a != "--"]
    sys.stdout.flush()
    os.execve(exe, [exe, "-c", str(conf), *rest], {**os.environ, **env})
    return EXIT_FAILED  # not reached


# ------------------------------------------------------------------ status

def _fmt_uptime(sec: int | None) -> str:
    if sec is None:
        return "-"
    d, rest = divmod(sec, 86400)
    h, rest = divmod(rest, 3600)
    m, s = divmod(rest, 60)
    return (f"{d}d " if d else "") + f"{h:02d}:{m:02d}:{s:02d}"


def cmd_status(args: argparse.Namespace) -> int:
    from vigil.supervisor_client import Supervisor, SupervisorError, SupervisorUnavailable

    cfg = _load(args)
    client = Supervisor(supervisor_socket(cfg), cfg.get("Supervisor", "RPC_Timeout_sec"))
    try:
        programs = client.programs()
    except SupervisorUnavailable as exc:
        raise CommandError(f"{exc} (is the appliance running? `vigil supervisord`)",
                           EXIT_UNAVAILABLE) from exc
    except SupervisorError as exc:
        raise CommandError(str(exc), EXIT_FAILED) from exc
    radcheck = _radcheck_state(cfg)
    sections = _room_sections(cfg)
    if args.json:
        out: dict[str, Any] = {"socket": client.socket_file, "role": cfg.get("Site", "Role"),
                               "programs": [vars(p) | {"name": p.full_name} for p in programs],
                               "radcheck": radcheck}
        out.update({title: data for title, _, data in sections})
        print(json.dumps(out, indent=2, sort_keys=True, default=str))
    else:
        print(f"role {cfg.get('Site', 'Role')}, supervisord on {client.socket_file}")
        print(f"{'PROGRAM':<22} {'STATE':<9} {'PID':>7} {'UPTIME':>12}  LOG")
        for p in programs:
            print(f"{p.full_name:<22} {p.state:<9} {p.pid or '-':>7} "
                  f"{_fmt_uptime(p.uptime_sec):>12}  {p.stdout_logfile}"
                  + (f"  ({p.spawnerr})" if p.spawnerr else ""))
        if radcheck:
            age = time.time() - float(radcheck.get("time") or 0)
            verdict = "OK" if radcheck.get("ok") else f"FAILING: {radcheck.get('last_error')}"
            print(f"radcheck: {verdict}, {age:.0f} s ago, "
                  f"{radcheck.get('consecutive_failures', 0)} consecutive failure(s), "
                  f"{radcheck.get('restarts', 0)} restart(s)")
        for _title, lines, _ in sections:
            for line in lines:
                print(line)
    bad = [p for p in programs if p.state not in ("RUNNING", "STARTING")]
    return EXIT_FAILED if bad else EXIT_OK


def _room_sections(cfg: config.Config) -> list[tuple[str, list[str], Any]]:
    from vigil.status_sections import SECTIONS

    out = []
    for section in SECTIONS:
        try:
            out.append(section(cfg))
        except Exception as exc:  # one room's trouble must not hide the programs
            out.append((getattr(section, "__name__", "section"), [f"({exc})"], None))
    return out


def _radcheck_state(cfg: config.Config) -> dict[str, Any] | None:
    from vigil import statefile

    # radcheck's state is read as data (a JSON file named by its option): no import
    try:
        data = statefile.read_json(cfg.state_file("Self Test", "State_File", "radcheck.json"))
    except (KeyError, statefile.CorruptStateError, OSError):
        return None
    return data if isinstance(data, dict) else None


# ------------------------------------------------------------------- alert

def cmd_alert_send(args: argparse.Namespace) -> int:
    from vigil import alerts

    cfg = _load(args)
    if args.to:
        try:
            config.email(args.to)
        except ValueError as exc:
            raise CommandError(f"--to: {exc}", EXIT_USAGE) from None
    body = sys.stdin.read()
    if not body.strip():
        raise CommandError("the alert body (stdin) is empty", EXIT_USAGE)
    outcome = alerts.send_alert_outcome(cfg, args.subject, body, kind=args.kind,
                                        rate_limited=not args.no_rate_limit, to=args.to)
    if outcome == alerts.HELD:
        raise CommandError("not sent: held back by the flood limit (counted; the next alert "
                           "that goes out summarises it)", EXIT_FAILED)
    if outcome == alerts.FAILED:
        raise CommandError("not sent: SMTP delivery failed (see the message above)",
                           EXIT_UNAVAILABLE)
    return EXIT_OK
