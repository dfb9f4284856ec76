"""The central Nagios configuration, generated with pynag from the sites and checks files.

Layout of the output folder::

    nagios.cfg                 main configuration (paths under var/)
    objects/templates.cfg      etc/nagios/templates.cfg, copied
    objects/commands.cfg       stale commands, the on-call notification commands, perfdata
    objects/contacts.cfg       on-call contacts and their contact group
    objects/servicegroups.cfg  one service group per subsystem
    objects/site-<name>.cfg    the site's virtual host, its hosts, their services, its host group
    var/                       status.dat, the command file, logs, retention (runtime)

Objects are built as ``pynag.Model`` objects and written with their own
``str()``; pynag 1.1.2 imports on Python 3.11 (its only noise is a
ResourceWarning at import, silenced here). See docs/monitor.md for the
one-alert-per-silent-site design.
"""

from __future__ import annotations

import shlex
import shutil
import warnings
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from monitor import runbooks
from monitor.scheduler import SITE_HEARTBEAT_SERVICE, CheckLike
from monitor.settings import Timing
from monitor.sites import Site

with warnings.catch_warnings():
    # pynag opens a file without closing it at import; nothing we can fix from here.
    warnings.simplefilter("ignore")
    import pynag.Model as model

TEMPLATES = Path(__file__).resolve().parent.parent / "etc" / "nagios" / "templates.cfg"
ONCALL_GROUP = "oncall"


class GenerateError(ValueError):
    """The inputs cannot make a valid Nagios configuration; the message says why."""


@dataclass
class NagiosSettings:
    out_dir: Path
    timing: Timing
    on_call: Sequence[str]
    notify_command: str  # gets --subject S --to ADDR, the body on stdin
    runbook_url: str  # the base: runbooks.link(runbook_url, page, anchor)
    nagios_user: str = "nagios"
    nagios_group: str = "nagios"
    command_file: Path | None = None  # default var/rw/nagios.cmd
    var_dir: Path | None = None  # default out_dir/var
    extra_main: dict[str, str] = field(default_factory=dict)
    # `vigil -c CONF` (words) for the commands Nagios runs through Vigil: the mail
    # composer and the perfdata processor. Empty: the notify command gets a printf body.
    vigil_command: Sequence[str] = ()
    graph_url: str = ""  # each service's action_url (+ ?host=&service=); empty: none
    perfdata_interval_sec: int = 0  # 0: perfdata not kept (no graphs)
    # stores a perfdata file (gets --file F); empty: `vigil_command monitor perfdata`
    perfdata_store: Sequence[str] = ()
    docs_dir: Path = runbooks.DOCS  # where the runbooks' first steps are read

    @property
    def var(self) -> Path:
        return self.var_dir or self.out_dir / "var"

    @property
    def cmd_file(self) -> Path:
        return self.command_file or self.var / "rw" / "nagios.cmd"


# ------------------------------------------------------------------ helpers
def _obj(cls: type, **attrs: object) -> str:
    obj = cls()
    for k, v in attrs.items():
        if v is None:
            continue
        text = str(v)
        if "\n" in text or ";" in text:
            raise GenerateError(f"{cls.__name__} {k}={text!r}: Nagios objects cannot hold "
                                "newlines or ';'")
        obj[k] = text
    return str(obj) + "\n"


def service_freshness(spec: CheckLike, timing: Timing) -> int:
    """Three of its intervals for a check that runs less often than the threshold assumes."""
    return max(timing.service_sec, int(3 * float(spec.interval_sec)))


def subsystem_of(spec: CheckLike) -> str:
    return str(getattr(spec, "subsystem", "") or "general")


def checks_for_role(checks: Sequence[CheckLike], role: str) -> list[CheckLike]:
    """The checks a host of ``role`` runs: all of them unless a check names its roles."""
    out = []
    for spec in checks:
        roles = getattr(spec, "roles", None)
        if not roles or role == "all" or role in roles or "all" in roles:
            out.append(spec)
    return out


# ---------------------------------------------------------------- commands
def notification_commands(notify: str, vigil_command: Sequence[str] = ()) -> str:
    """How Nagios mails on-call: through ``vigil monitor notify`` (macros from the
    environment, see monitor/notify.py) when the vigil command is known."""
    if vigil_command:
        base = " ".join(shlex.quote(w) for w in vigil_command)
        return "".join(
            _obj(model.Command, command_name=f"notify-{kind}-by-vigil",
                 command_line=f"{base} monitor notify {kind} -- {notify}")
            for kind in ("service", "host"))
    return printf_notification_commands(notify)


def printf_notification_commands(notify: str) -> str:
    """The plain-shell fallback (no vigil program to compose the mail)."""
    service_body = ("***** Vigil / Nagios *****\\n\\nNotification: $NOTIFICATIONTYPE$\\n"
                    "Host: $HOSTNAME$ (site $HOSTGROUPNAME$)\\nService: $SERVICEDESC$\\n"
                    "State: $SERVICESTATE$\\nInfo: $SERVICEOUTPUT$\\n"
                    "Runbook: $SERVICENOTESURL$\\nFirst step: $SERVICENOTES$\\n")
    host_body = ("***** Vigil / Nagios *****\\n\\nNotification: $NOTIFICATIONTYPE$\\n"
                 "Host: $HOSTNAME$ ($HOSTALIAS$)\\nState: $HOSTSTATE$\\nInfo: $HOSTOUTPUT$\\n"
                 "Runbook: $HOSTNOTESURL$\\nFirst step: $HOSTNOTES$\\n")
    service_line = (f'/usr/bin/printf "%b" "{service_body}" | {notify} --subject '
                    '"$NOTIFICATIONTYPE$: $HOSTNAME$/$SERVICEDESC$ is $SERVICESTATE$" '
                    '--to "$CONTACTEMAIL$"')
    host_line = (f'/usr/bin/printf "%b" "{host_body}" | {notify} --subject '
                 '"$NOTIFICATIONTYPE$: $HOSTALIAS$ is $HOSTSTATE$" --to "$CONTACTEMAIL$"')
    return (_obj(model.Command, command_name="notify-service-by-vigil",
                 command_line=service_line)
            + _obj(model.Command, command_name="notify-host-by-vigil", command_line=host_line))


def perfdata_command(settings: NagiosSettings, perf_file: Path) -> str:
    words = list(settings.perfdata_store) or [*settings.vigil_command, "monitor", "perfdata"]
    base = " ".join(shlex.quote(w) for w in words)
    return _obj(model.Command, command_name="vigil-process-perfdata",
                command_line=f"{base} --file {shlex.quote(str(perf_file))}")


def note_text(text: str) -> str:
    """A runbook's first step as a Nagios ``notes`` value (no ';', no shell or macro chars)."""
    clean = text.replace(";", ",").replace("$", "").replace("`", "'")
    return " ".join(clean.split())[:400]


def stale_commands() -> str:
    # '&&' makes Nagios run the line through /bin/sh; ';' would start a comment.
    return (
        _obj(model.Command, command_name="vigil-service-stale",
             command_line='/bin/echo "CRITICAL - no data for $ARG1$ s" && exit 2')
        + _obj(model.Command, command_name="vigil-host-stale",
               command_line='/bin/echo "DOWN - no results from $HOSTNAME$ for $ARG1$ s" '
                            '&& exit 2')
        + _obj(model.Command, command_name="vigil-site-stale",
               command_line='/bin/echo "SITE DOWN - no results from any host of site '
                            '$HOSTNAME$ for $ARG1$ s" && exit 2'))


def contacts(emails: Iterable[str]) -> str:
    names = []
    text = ""
    for i, addr in enumerate(emails, 1):
        name = f"oncall-{i}"
        names.append(name)
        text += _obj(model.Contact, use="vigil-on-call", contact_name=name,
                     alias=f"On-call {addr}", email=addr)
    if not names:
        raise GenerateError("no on-call e-mail address: set [Monitor] On_Call_Email or "
                            "[Global] last_resort_email")
    text += _obj(model.Contactgroup, contactgroup_name=ONCALL_GROUP, alias="On-call engineers",
                 members=",".join(names))
    return text


# ------------------------------------------------------------------- sites
def site_objects(site: Site, checks_of: Callable[[str], Sequence[CheckLike]],
                 settings: NagiosSettings) -> str:
    t = settings.timing
    base = settings.runbook_url
    steps = runbooks.first_steps(settings.docs_dir, "monitor")
    check_steps = runbooks.first_steps(settings.docs_dir, "checks")
    action = (f"{settings.graph_url}?host=$HOSTNAME$&service=$SERVICEDESC$"
              if settings.graph_url else None)
    text = f"# Site {site.name}: generated by `vigil monitor nagios-config`; do not edit.\n\n"
    text += _obj(model.Host, use="vigil-passive-host", host_name=site.name,
                 notification_interval=t.notification_interval,
                 alias=f"site {site.name}", address="127.0.0.1",
                 check_command=f"vigil-site-stale!{t.site_sec}",
                 freshness_threshold=t.site_sec, hostgroups=site.name,
                 notes=note_text(steps.get("site-down", "")) or None,
                 notes_url=runbooks.link(base, "monitor", "site-down"))
    text += _obj(model.Service, use="vigil-passive-service", host_name=site.name,
                 service_description=SITE_HEARTBEAT_SERVICE,
                 check_command=f"vigil-service-stale!{t.service_sec}",
                 freshness_threshold=t.service_sec, notifications_enabled=0,
                 servicegroups="site", notes_url=runbooks.link(base, "monitor", "site-down"))
    for host in site.hosts:
        text += _obj(model.Host, use="vigil-passive-host", host_name=host.name,
                     notification_interval=t.notification_interval,
                     alias=f"{host.name} ({host.role}, site {site.name})", address=host.address,
                     parents=site.name, hostgroups=site.name,
                     check_command=f"vigil-host-stale!{t.host_sec}",
                     freshness_threshold=t.host_sec,
                     notes=note_text(steps.get("host-down", "")) or None,
                     notes_url=runbooks.link(base, "monitor", "host-down"))
        seen: dict[str, str] = {}
        for spec in checks_of(host.role):
            desc = spec.service_description
            if desc in seen:
                raise GenerateError(f"host {host.name}: checks {seen[desc]} and {spec.name} "
                                    f"have the same service description {desc!r}")
            seen[desc] = spec.name
            text += _obj(model.Service, use="vigil-passive-service", host_name=host.name,
                         notification_interval=t.notification_interval,
                         service_description=desc,
                         check_command=f"vigil-service-stale!{service_freshness(spec, t)}",
                         freshness_threshold=service_freshness(spec, t),
                         servicegroups=subsystem_of(spec),
                         notes=note_text(check_steps.get(f"check-{spec.name}", "")) or None,
                         notes_url=runbooks.link(base, "checks", f"check-{spec.name}"),
                         action_url=action)
    text += _obj(model.Hostgroup, hostgroup_name=site.name, alias=f"Site {site.name}")
    return text


def servicegroups(names: Iterable[str]) -> str:
    return "".join(_obj(model.Servicegroup, servicegroup_name=n, alias=f"Subsystem {n}")
                   for n in sorted(set(names)))


def main_config(settings: NagiosSettings) -> str:
    t = settings.timing
    var = settings.var
    lines = {
        "log_file": var / "nagios.log",
        "cfg_dir": settings.out_dir / "objects",
        "object_cache_file": var / "objects.cache",
        "precached_object_file": var / "objects.precache",
        "status_file": var / "status.dat",
        "status_update_interval": max(1, min(10, t.check_interval_sec)),
        "nagios_user": settings.nagios_user,
        "nagios_group": settings.nagios_group,
        "check_external_commands": 1,
        "command_file": settings.cmd_file,
        "query_socket": var / "rw" / "nagios.qh",
        "lock_file": var / "nagios.lock",
        "temp_file": var / "nagios.tmp",
        "temp_path": var / "tmp",
        "check_result_path": var / "checkresults",
        "state_retention_file": var / "retention.dat",
        "retain_state_information": 1,
        "retention_update_interval": 60,
        "use_syslog": 0,
        "log_rotation_method": "n",
        "log_notifications": 1,
        "log_passive_checks": 1,
        "log_initial_states": 0,
        "interval_length": t.interval_length_sec,
        "check_result_reaper_frequency": t.reaper_sec,
        "max_check_result_reaper_time": 30,
        "accept_passive_service_checks": 1,
        "accept_passive_host_checks": 1,
        "execute_service_checks": 1,
        "execute_host_checks": 1,
        "passive_host_checks_are_soft": 0,
        "translate_passive_host_checks": 0,
        "check_service_freshness": 1,
        "service_freshness_check_interval": t.check_interval_sec,
        "check_host_freshness": 1,
        "host_freshness_check_interval": t.check_interval_sec,
        "additional_freshness_latency": t.latency_sec,
        "enable_notifications": 1,
        "enable_event_handlers": 0,
        "enable_flap_detection": 0,
        **perfdata_main(settings),
        "soft_state_dependencies": 0,
        "check_for_orphaned_services": 1,
        "check_for_orphaned_hosts": 1,
        "service_check_timeout": 30,
        "host_check_timeout": 30,
        "notification_timeout": 30,
        "check_for_updates": 0,
        "bare_update_check": 0,
        "date_format": "iso8601",
        "illegal_object_name_chars": "`~!$%^&*|'\"<>?,()=",
        "illegal_macro_output_chars": "`~$&|'\"<>",
        "admin_email": settings.on_call[0] if settings.on_call else "",
        # the mail composer reads the macros from its environment (monitor/notify.py)
        "enable_environment_macros": 1 if settings.vigil_command else 0,
        **settings.extra_main,
    }
    head = ("# Vigil central Nagios: generated by `vigil monitor nagios-config`; do not edit.\n"
            "# Regenerate from etc/sites.conf, etc/checks.conf and [Monitor] instead.\n")
    return head + "".join(f"{k}={v}\n" for k, v in lines.items())


def perfdata_file(settings: NagiosSettings) -> Path:
    return settings.var / "perfdata" / "service-perfdata"


def perfdata_main(settings: NagiosSettings) -> dict[str, object]:
    """Bulk perfdata (as PNP4Nagios): one line per result into a file that
    ``vigil monitor perfdata`` takes every Perfdata_Interval_sec (monitor/graphs.py).
    Each line carries the result's own time ($LASTSERVICECHECK$, the passive
    result's timestamp), so results a spool delivers late land where they belong."""
    if not settings.perfdata_interval_sec or not settings.vigil_command:
        return {"process_performance_data": 0}
    return {
        "process_performance_data": 1,
        "service_perfdata_file": perfdata_file(settings),
        "service_perfdata_file_template":
            "$LASTSERVICECHECK$\\t$HOSTNAME$\\t$SERVICEDESC$\\t$SERVICEPERFDATA$",
        "service_perfdata_file_mode": "a",
        "service_perfdata_file_processing_interval": settings.perfdata_interval_sec,
        "service_perfdata_file_processing_command": "vigil-process-perfdata",
        "perfdata_timeout": 30,
    }


@dataclass
class Generated:
    out_dir: Path
    main_cfg: Path
    hosts: int
    services: int
    sites: int


def generate(sites: Sequence[Site], checks: Sequence[CheckLike],
             settings: NagiosSettings) -> Generated:
    """Write the whole configuration into ``settings.out_dir`` (objects/ replaced)."""
    if not checks:
        raise GenerateError("the checks file lists no checks")
    names = [c.name for c in checks]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise GenerateError(f"check {dupes[0]} is listed twice")
    out = Path(settings.out_dir)
    objects = out / "objects"
    # Build everything first: a failure leaves the previous configuration in place.
    files: dict[str, str] = {
        "templates.cfg": TEMPLATES.read_text(encoding="utf-8"),
        "commands.cfg": (stale_commands()
                         + notification_commands(settings.notify_command,
                                                 settings.vigil_command)
                         + (perfdata_command(settings, perfdata_file(settings))
                            if settings.vigil_command else "")),
        "contacts.cfg": contacts(settings.on_call),
    }
    services = 0
    groups = {"site"}
    for site in sites:
        files[f"site-{site.name}.cfg"] = site_objects(
            site, lambda role: checks_for_role(checks, role), settings)
        for host in site.hosts:
            mine = checks_for_role(checks, host.role)
            services += len(mine)
            groups.update(subsystem_of(c) for c in mine)
        services += 1
    files["servicegroups.cfg"] = servicegroups(groups)
    staging = out / "objects.new"
    if staging.exists():
        shutil.rmtree(staging)
    staging.mkdir(parents=True)
    for name, text in files.items():
        (staging / name).write_text(text, encoding="utf-8")
    if objects.exists():
        shutil.rmtree(objects)
    staging.rename(objects)
    for sub in ("rw", "tmp", "checkresults", "perfdata"):
        (settings.var / sub).mkdir(parents=True, exist_ok=True)
    settings.cmd_file.parent.mkdir(parents=True, exist_ok=True)
    main = out / "nagios.cfg"
    main.write_text(main_config(settings), encoding="utf-8")
    return Generated(out, main, sum(len(s.hosts) + 1 for s in sites), services, len(sites))


def hand_over_runtime(settings: NagiosSettings) -> None:
    """Give Nagios' runtime folders to ``nagios_user`` (it drops root before writing them)."""
    import grp
    import os
    import pwd

    if os.geteuid() != 0 or settings.nagios_user == "root":
        return
    try:
        uid = pwd.getpwnam(settings.nagios_user).pw_uid
        gid = grp.getgrnam(settings.nagios_group).gr_gid
    except KeyError as exc:
        raise GenerateError(f"no such user or group: {exc.args[0]}") from None
    for root, dirs, files in os.walk(settings.var):
        for name in [*dirs, *files]:
            os.chown(os.path.join(root, name), uid, gid)
    os.chown(settings.var, uid, gid)
    os.chown(settings.cmd_file.parent, uid, gid)
