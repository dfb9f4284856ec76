"""``vigil monitor ...``: run the checks, the scheduler, and the central Nagios.

- ``run-once``: run every check of this server now and print a table (``--json``).
- ``scheduler``: the per-server scheduler, foreground, under supervisor (SIGTERM
  stops it cleanly, SIGHUP re-reads the checks file).
- ``nagios-config --out DIR``: generate the central Nagios configuration.
- ``nagios``: generate into ``[Monitor] Nagios_Dir``, verify, and run Nagios in
  the foreground (the central role, under supervisor).
- ``web``: generate the dashboard (lighttpd + Nagios CGIs, runbooks, graphs) into
  ``[Monitor] Web_Dir`` and run lighttpd in the foreground (central role).
- ``perfdata --file F``: store Nagios' perfdata file in the graphs' RRD files
  (Nagios runs it; monitor/graphs.py).
- ``notify service|host -- NOTIFY...``: compose a Nagios notification mail from
  the NAGIOS_* environment and send it through NOTIFY (Nagios runs it).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

from checks import catalog
from monitor import graphs, notify, settings, web
from monitor.nagios_config import GenerateError, NagiosSettings, generate, hand_over_runtime
from monitor.scheduler import PassReport, Scheduler, plugin_env
from monitor.sites import SitesFileError
from monitor.sites import load as load_sites
from monitor.spool import Spool
from monitor.startup import StartupGate
from monitor.transport import Outbox, Sender, SendNSCASender, VigilNSCASender
from vigil import config as vconfig
from vigil.cli import EXIT_FAILED, EXIT_USAGE, CommandError

log = logging.getLogger(__name__)


def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "monitor", help="check scheduler and central Nagios",
        description="Run this server's checks (once, or every pass under supervisor) and "
                    "generate or run the central Nagios. See docs/monitor.md.")
    sub = p.add_subparsers(dest="monitor_command", metavar="ACTION")
    sub.required = True

    q = sub.add_parser("run-once", help="run every check of this server now; print a table")
    q.add_argument("--checks", metavar="FILE", help="checks file (default [Monitor] Checks_File)")
    q.add_argument("--json", action="store_true", help="print JSON instead of a table")
    q.add_argument("--send", action="store_true",
                   help="also send the results to [NSCA] Config_Server (through the spool)")
    q.set_defaults(func=cmd_run_once)

    q = sub.add_parser("scheduler", help="run the checks every pass period and send the "
                                         "results (foreground, under supervisor)")
    q.add_argument("--checks", metavar="FILE", help="checks file (default [Monitor] Checks_File)")
    q.add_argument("--passes", type=int, default=0, metavar="N",
                   help="stop after N passes (default: run until SIGTERM)")
    q.set_defaults(func=cmd_scheduler)

    q = sub.add_parser("nagios-config", help="generate the central Nagios configuration")
    q.add_argument("--out", required=True, metavar="DIR", help="output folder")
    q.add_argument("--sites", metavar="FILE", help="sites file (default [Monitor] Sites_File)")
    q.add_argument("--checks", metavar="FILE", help="checks file (default [Monitor] Checks_File)")
    q.add_argument("--verify", action="store_true",
                   help="run `nagios4 -v` on the result (exit 1 if it finds problems)")
    q.set_defaults(func=cmd_nagios_config)

    q = sub.add_parser("nagios", help="generate into [Monitor] Nagios_Dir and run Nagios in "
                                      "the foreground (central role, under supervisor)")
    q.add_argument("--sites", metavar="FILE", help="sites file (default [Monitor] Sites_File)")
    q.add_argument("--checks", metavar="FILE", help="checks file (default [Monitor] Checks_File)")
    q.set_defaults(func=cmd_nagios)

    q = sub.add_parser("web", help="generate the dashboard into [Monitor] Web_Dir and run "
                                   "lighttpd in the foreground (central role, under supervisor)")
    q.add_argument("--dry-run", action="store_true",
                   help="generate and check the configuration (lighttpd -tt), do not serve")
    q.set_defaults(func=cmd_web)

    q = sub.add_parser("perfdata", help="store a Nagios perfdata file in the graphs' RRD files "
                                        "(run by Nagios every Perfdata_Interval_sec)")
    q.add_argument("--file", required=True, metavar="PATH", help="Nagios' service_perfdata_file")
    q.set_defaults(func=cmd_perfdata)

    q = sub.add_parser("notify", help="mail a Nagios notification (run by Nagios with "
                                      "environment macros): NAGIOS_* in, NOTIFY gets the mail")
    q.add_argument("kind", choices=("service", "host"))
    q.add_argument("notify", nargs=argparse.REMAINDER,
                   help="-- then the notify command (gets --subject S --to ADDR, body on stdin)")
    q.set_defaults(func=cmd_notify)


# ------------------------------------------------------------------ helpers
def _load_cfg(args: argparse.Namespace) -> vconfig.Config:
    return vconfig.load(args.config)


def _checks(cfg: vconfig.Config, explicit: str | None, *, all_roles: bool = False) -> list[Any]:
    """This server's checks (its ``[Site] Role``), or every check for the central config."""
    path = Path(explicit) if explicit else cfg.path(settings.SECTION, "Checks_File")
    try:
        return list(catalog.load_checks(path, None if all_roles else cfg.get("Site", "Role"),
                                        tolerant=True))
    except catalog.CatalogError as exc:
        raise CommandError(str(exc), EXIT_USAGE) from None


def _nsca(cfg: vconfig.Config, name: str) -> Any:
    try:
        return cfg.get("NSCA", name)
    except KeyError:
        raise CommandError(f"[NSCA] {name} is not available: the nsca room is not installed",
                           EXIT_USAGE) from None


def build_sender(cfg: vconfig.Config) -> Sender:
    try:
        host, port = settings.config_server(cfg)
    except KeyError:
        raise CommandError("[NSCA] Config_Server is not available: the nsca room is not "
                           "installed", EXIT_USAGE) from None
    password = _nsca(cfg, "Password")
    if not isinstance(password, vconfig.Secret):
        password = vconfig.Secret(str(password))
    method = int(_nsca(cfg, "Encryption_Method"))
    timeout = float(_nsca(cfg, "Timeout_sec"))
    if cfg.get(settings.SECTION, "Transport") == "send_nsca":
        return SendNSCASender(str(cfg.get(settings.SECTION, "Send_NSCA_Binary")), host, port,
                              password, method, settings.spool_dir(cfg).parent, timeout)
    return VigilNSCASender(host, port, password, method, timeout,
                           int(_nsca(cfg, "Packet_Version")))


def build_outbox(cfg: vconfig.Config) -> Outbox:
    folder = settings.spool_dir(cfg)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        os.chmod(folder, 0o700)
    except OSError as exc:
        raise CommandError(f"spool {folder}: {exc.strerror}", EXIT_USAGE) from None
    return Outbox(build_sender(cfg),
                  Spool(folder, cfg.get(settings.SECTION, "Spool_Max_Passes")))


# Roles whose server runs the engine and radcheck (etc/supervisor/site/).
ENGINE_ROLES = ("primary", "secondary", "all")


def startup_gate(cfg: vconfig.Config) -> StartupGate | None:
    """The start-up grace of a server that runs the engine (monitor/startup.py)."""
    grace = cfg.get(settings.SECTION, "Startup_Grace_sec")
    if not grace or cfg.get("Site", "Role") not in ENGINE_ROLES:
        return None
    state_dir = cfg.path("Site", "State_Dir")
    radcheck = (cfg.path("Self Test", "State_File") if cfg.get("Self Test", "State_File")
                else state_dir / "radcheck.json")
    return StartupGate(radcheck, state_dir / "radiusd-stats.json", grace)


def build_scheduler(cfg: vconfig.Config, checks: list[Any], outbox: Outbox | None,
                    gate: StartupGate | None = None) -> Scheduler:
    return Scheduler(checks, host_name=cfg.get("Site", "Host_Name"),
                     site_name=cfg.get("Site", "Name"), outbox=outbox,
                     parallelism=cfg.get(settings.SECTION, "Parallelism"),
                     max_output=cfg.get(settings.SECTION, "Max_Output_Bytes"),
                     env=plugin_env(cfg.source), gate=gate)


def report_rows(report: PassReport) -> list[dict[str, Any]]:
    return [{"check": spec.name, "service": spec.service_description, "state": o.state,
             "status": o.status, "duration_sec": round(o.duration, 3), "output": o.output}
            for spec, o in report.outcomes]


def format_table(rows: list[dict[str, Any]], width: int = 120) -> str:
    if not rows:
        return "no checks"
    wc = max(len("CHECK"), *(len(r["check"]) for r in rows))
    ws = max(len("STATE"), *(len(r["state"]) for r in rows))
    head = f"{'CHECK':<{wc}}  {'STATE':<{ws}}  {'TIME':>6}  OUTPUT"
    room = max(20, width - len(head) + len("OUTPUT"))
    lines = [head]
    for r in rows:
        out = r["output"] if len(r["output"]) <= room else r["output"][:room - 3] + "..."
        lines.append(f"{r['check']:<{wc}}  {r['state']:<{ws}}  {r['duration_sec']:>5.1f}s  {out}")
    return "\n".join(lines)


# ----------------------------------------------------------------- commands
def cmd_run_once(args: argparse.Namespace) -> int:
    cfg = _load_cfg(args)
    checks = _checks(cfg, args.checks)
    outbox = build_outbox(cfg) if args.send else None
    sched = build_scheduler(cfg, checks, outbox)
    try:
        report = sched.run_pass(everything=True)
    finally:
        sched.close()
    rows = report_rows(report)
    if args.json:
        doc: dict[str, Any] = {"host": sched.host_name, "duration_sec": round(report.duration, 3),
                               "cpu_sec": round(report.cpu_sec, 3), "checks": rows}
        if report.delivery is not None:
            doc["sent"] = report.delivery.sent
            doc["waiting_passes"] = report.delivery.waiting_passes
            doc["send_error"] = report.delivery.error
        print(json.dumps(doc, indent=2))
    else:
        width = shutil.get_terminal_size((120, 24)).columns
        print(format_table(rows, width))
        c = report.counts()
        print(f"\n{len(rows)} checks in {report.duration:.1f} s (cpu {report.cpu_sec:.2f} s): "
              + ", ".join(f"{c.get(s, 0)} {s}" for s in ("OK", "WARNING", "CRITICAL", "UNKNOWN")))
        if report.delivery is not None:
            d = report.delivery
            print(f"sent {d.sent} result(s); {d.waiting_passes} pass(es) waiting"
                  + (f"; {d.error}" if d.error else ""))
    return 0


def cmd_scheduler(args: argparse.Namespace) -> int:
    cfg = _load_cfg(args)
    from vigil import logs

    logs.setup("Console", None, cfg.get("Log", "Level"), "monitor-scheduler")
    checks_path = args.checks
    checks = _checks(cfg, checks_path)
    sched = build_scheduler(cfg, checks, build_outbox(cfg), startup_gate(cfg))
    period = float(cfg.get(settings.SECTION, "Pass_Period_sec"))

    def reload() -> list[Any]:
        return _checks(vconfig.load(args.config), checks_path)

    def on_term(signum: int, frame: object) -> None:
        log.info("monitor: %s received, stopping", signal.Signals(signum).name)
        sched.stop()

    def on_hup(signum: int, frame: object) -> None:
        sched.request_reload(reload)

    signal.signal(signal.SIGTERM, on_term)
    signal.signal(signal.SIGINT, on_term)
    signal.signal(signal.SIGHUP, on_hup)
    passes = 0

    def on_pass(report: PassReport) -> None:
        nonlocal passes
        passes += 1
        if args.passes and passes >= args.passes:
            sched.stop()

    try:
        sched.run_forever(period, on_pass)
    finally:
        sched.close()
    return 0


def nagios_settings(cfg: vconfig.Config, out_dir: Path) -> NagiosSettings:
    t = settings.timing(cfg)
    notify_tpl: str = cfg.get(settings.SECTION, "Notify_Command")
    vigil_bin = shutil.which("vigil") or str(Path(sys.executable).parent / "vigil")
    local = Path(sys.executable).parent / "vigil"
    if local.exists():
        vigil_bin = str(local)
    conf = str(Path(cfg.source).resolve()) if not cfg.source.startswith("<") else ""
    try:
        notify = notify_tpl.format(vigil=vigil_bin, config=conf)
    except (KeyError, IndexError, ValueError) as exc:
        raise vconfig.ConfigError(cfg.source, settings.SECTION, "Notify_Command",
                                  f"only {{vigil}} and {{config}} may be used ({exc})") from None
    if not conf:
        notify = notify.replace(" -c  ", " ")
    runbook = settings.runbook_base(cfg)
    vigil_command = [vigil_bin, "-c", conf] if conf else [vigil_bin]
    command_file: Path | None = None
    try:
        command_file = cfg.path("NSCA", "Command_File")
    except KeyError:
        command_file = None
    return NagiosSettings(out_dir=out_dir, timing=t, on_call=settings.on_call(cfg),
                          notify_command=notify, runbook_url=runbook,
                          nagios_user=cfg.get(settings.SECTION, "Nagios_User"),
                          nagios_group=cfg.get(settings.SECTION, "Nagios_Group"),
                          command_file=command_file, vigil_command=vigil_command,
                          graph_url=web.GRAPH_SCRIPT,
                          perfdata_store=[sys.executable, "-m", "monitor.graphs", "--rrd-dir",
                                          str(settings.web_dir(cfg) / "rrd"), "--rrdtool",
                                          str(cfg.get(settings.SECTION, "Rrdtool_Binary"))],
                          perfdata_interval_sec=cfg.get(settings.SECTION,
                                                        "Perfdata_Interval_sec"))


def _generate(cfg: vconfig.Config, args: argparse.Namespace, out_dir: Path) -> Path:
    sites_path = Path(args.sites) if args.sites else cfg.path(settings.SECTION, "Sites_File")
    try:
        sites = load_sites(sites_path)
    except SitesFileError as exc:
        raise CommandError(str(exc), EXIT_USAGE) from None
    checks = _checks(cfg, args.checks, all_roles=True)
    try:
        g = generate(sites, checks, nagios_settings(cfg, out_dir))
    except GenerateError as exc:
        raise CommandError(str(exc), EXIT_USAGE) from None
    except OSError as exc:
        raise CommandError(f"{out_dir}: {exc.strerror}", EXIT_FAILED) from None
    print(f"generated {g.main_cfg}: {g.sites} sites, {g.hosts} hosts, {g.services} services")
    return g.main_cfg


def verify(cfg: vconfig.Config, main_cfg: Path) -> None:
    binary = str(cfg.get(settings.SECTION, "Nagios_Binary"))
    try:
        proc = subprocess.run([binary, "-v", str(main_cfg)], capture_output=True, text=True,
                              timeout=60, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise CommandError(f"{binary} -v: {exc}", 3) from None
    if proc.returncode != 0:
        detail = "\n".join(ln for ln in proc.stdout.splitlines()
                           if "Error" in ln or "Warning" in ln)
        raise CommandError(f"{binary} -v {main_cfg} found problems:\n{detail}", EXIT_FAILED)
    print(f"{binary} -v: configuration OK")


def cmd_nagios_config(args: argparse.Namespace) -> int:
    cfg = _load_cfg(args)
    main_cfg = _generate(cfg, args, Path(args.out).resolve())
    if args.verify:
        verify(cfg, main_cfg)
    return 0


def cmd_nagios(args: argparse.Namespace) -> int:
    cfg = _load_cfg(args)
    out_dir = settings.nagios_dir(cfg)
    main_cfg = _generate(cfg, args, out_dir)
    try:
        hand_over_runtime(nagios_settings(cfg, out_dir))
    except (GenerateError, OSError) as exc:
        raise CommandError(f"Nagios runtime folders: {exc}", EXIT_USAGE) from None
    verify(cfg, main_cfg)
    binary = str(cfg.get(settings.SECTION, "Nagios_Binary"))
    sys.stdout.flush()
    sys.stderr.flush()
    # Nagios takes our place: supervisor's SIGTERM reaches it directly.
    os.execv(binary, [binary, str(main_cfg)])
    return 0  # not reached


def web_settings(cfg: vconfig.Config) -> web.WebSettings:
    password = cfg.get(settings.SECTION, "Web_Password")
    text = password.reveal() if isinstance(password, vconfig.Secret) else str(password)
    if not text:
        raise vconfig.ConfigError(cfg.source, settings.SECTION, "Web_Password",
                                  "empty: the dashboard needs a password for its login")
    user = cfg.get(settings.SECTION, "Nagios_User")
    run_as = user if os.geteuid() == 0 and user != "root" else None
    return web.WebSettings(
        web_dir=settings.web_dir(cfg), nagios_cfg=settings.nagios_dir(cfg) / "nagios.cfg",
        address=cfg.get(settings.SECTION, "Web_Address"),
        port=cfg.get(settings.SECTION, "Web_Port"),
        user=cfg.get(settings.SECTION, "Web_User"), password=text,
        rrdtool=str(cfg.get(settings.SECTION, "Rrdtool_Binary")), run_as=run_as)


def cmd_web(args: argparse.Namespace) -> int:
    cfg = _load_cfg(args)
    ws = web_settings(cfg)
    base = settings.runbook_base(cfg)
    try:
        conf = web.generate(ws, base)
    except (OSError, ValueError) as exc:
        raise CommandError(f"dashboard in {ws.web_dir}: {exc}", EXIT_FAILED) from None
    binary = str(cfg.get(settings.SECTION, "Lighttpd_Binary"))
    try:
        proc = subprocess.run([binary, "-tt", "-f", str(conf)], capture_output=True, text=True,
                              timeout=30, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise CommandError(f"{binary}: {exc}", 3) from None
    if proc.returncode != 0:
        raise CommandError(f"{binary} -tt -f {conf}: {(proc.stderr or proc.stdout).strip()}",
                           EXIT_FAILED)
    url = settings.web_url(cfg)
    print(f"dashboard {url}/ (user {ws.user}), runbooks {base}/, config {conf}")
    if args.dry_run:
        return 0
    sys.stdout.flush()
    sys.stderr.flush()
    # lighttpd takes our place: supervisor's SIGTERM reaches it directly.
    os.execv(binary, [binary, "-D", "-f", str(conf)])
    return 0  # not reached


def cmd_perfdata(args: argparse.Namespace) -> int:
    cfg = _load_cfg(args)
    store = graphs.Store(settings.web_dir(cfg) / "rrd",
                         str(cfg.get(settings.SECTION, "Rrdtool_Binary")))
    try:
        lines, stored = graphs.process_file(Path(args.file), store)
    except (OSError, graphs.GraphError) as exc:
        raise CommandError(f"perfdata {args.file}: {exc}", EXIT_FAILED) from None
    log.debug("monitor: perfdata %d lines, %d samples stored", lines, stored)
    return 0


def cmd_notify(args: argparse.Namespace) -> int:
    command = [w for w in args.notify if w != "--"] if args.notify[:1] == ["--"] \
        else list(args.notify)
    if not command:
        raise CommandError("notify: give the notify command after --", EXIT_USAGE)
    if len(command) == 1:  # Nagios passed it as one word through the shell
        import shlex

        command = shlex.split(command[0])
    return notify.send(os.environ, args.kind, command)
