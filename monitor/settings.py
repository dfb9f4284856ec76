"""Options of ``[Monitor]``: the per-server scheduler and the central Nagios.

Every option is declared once here. The scheduler sends to ``[NSCA]
Config_Server`` with ``[NSCA] Password`` / ``Encryption_Method`` (declared by
the NSCA room) and names itself with ``[Site] Host_Name`` / ``[Site] Name``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from vigil.config import (
    Config,
    ConfigError,
    choice,
    email_list,
    integer,
    ip_address,
    nonempty,
    path,
    secret,
    text,
)
from vigil.datatypes import Declarations

# shared with radcheck's mails, so a mail and the dashboard link the same page
from vigil.runbooks import runbook_base as runbook_base
from vigil.runbooks import web_url as web_url

OPTIONS = Declarations()  # collected by vigil.config.default_registry
declare = OPTIONS.declare

SECTION = "Monitor"


def nagios_name(value: str) -> str:
    """A Nagios user or group name."""
    if not re.match(r"^[a-z_][a-z0-9_-]*$", value):
        raise ValueError(f"{value!r} is not a user or group name")
    return value


# ------------------------------------------------------------- scheduler
declare(SECTION, "Checks_File", path, "checks.conf",
        "The checks this server runs (relative to the config file).")
declare(SECTION, "Sites_File", path, "sites.conf",
        "Sites, their hosts and roles: what the central Nagios expects to hear from.")
declare(SECTION, "Spool_Dir", text, "",
        "Results that could not be sent wait here (empty: <State_Dir>/monitor-spool).")
declare(SECTION, "Spool_Max_Passes", integer(1, 100000), "1440",
        "Passes kept in the spool while the configuration server is unreachable "
        "(1440 = one day at one pass a minute); the oldest go first.")
declare(SECTION, "Parallelism", integer(1, 64), "8", "Checks run at the same time.")
declare(SECTION, "Pass_Period_sec", integer(1, 3600), "60",
        "A scheduler pass starts every this many seconds (the source checks once a minute).")
declare(SECTION, "Startup_Grace_sec", integer(0, 3600), "120",
        "At start the checks wait (at most this long) until radcheck has passed a "
        "self-test and the engine has written its counters since the scheduler started, "
        "so a start does not page; the host result and heartbeat are sent meanwhile. "
        "Keep it below Freshness_Threshold_sec - Pass_Period_sec. 0: no grace.")
declare(SECTION, "Max_Output_Bytes", integer(256, 10_000_000), "65536",
        "A plugin printing more than this is stopped and reported UNKNOWN.")
declare(SECTION, "Transport", choice("vigil", "send_nsca"), "vigil",
        "How results travel to the configuration server: Vigil's NSCA client, "
        "or Debian's send_nsca (interoperability fallback).")
declare(SECTION, "Send_NSCA_Binary", path, "/usr/sbin/send_nsca",
        "The send_nsca program when Transport=send_nsca.")

# ---------------------------------------------------------- central Nagios
declare(SECTION, "Nagios_Binary", path, "/usr/sbin/nagios4", "The Nagios Core program.")
declare(SECTION, "Nagios_Dir", text, "",
        "Where `vigil monitor nagios` generates the configuration and keeps Nagios' "
        "status and spool files (empty: <State_Dir>/nagios).")
declare(SECTION, "Nagios_User", nagios_name, "root",
        "nagios_user of the generated nagios.cfg. root by default: its notification "
        "command reads vigil.conf (mode 0600) to reach the SMTP relay; another user needs "
        "read access to it.")
declare(SECTION, "Nagios_Group", nagios_name, "root",
        "nagios_group of the generated nagios.cfg.")
declare(SECTION, "Freshness_Threshold_sec", integer(1, 86400), "180",
        "A service with no result for this long turns CRITICAL (the source: three minutes). "
        "A check that runs less often than once a minute gets three of its intervals.")
declare(SECTION, "Host_Freshness_Threshold_sec", integer(1, 86400), "150",
        "A host whose scheduler sent nothing for this long turns DOWN; must be at least "
        "one Freshness_Check_Interval_sec below Freshness_Threshold_sec so the host is "
        "DOWN before its services go stale and their alerts are held back.")
declare(SECTION, "Site_Freshness_Threshold_sec", integer(1, 86400), "120",
        "A site none of whose hosts sent anything for this long turns DOWN (one "
        "site-down alert); at least one Freshness_Check_Interval_sec below "
        "Host_Freshness_Threshold_sec.")
declare(SECTION, "Freshness_Check_Interval_sec", integer(1, 3600), "15",
        "How often Nagios looks for stale results.")
declare(SECTION, "Freshness_Latency_sec", integer(0, 3600), "0",
        "Nagios' additional_freshness_latency.")
declare(SECTION, "Interval_Length_sec", integer(1, 3600), "60",
        "Nagios' interval_length: the unit of notification intervals.")
declare(SECTION, "Check_Result_Reaper_sec", integer(1, 60), "2",
        "How often Nagios picks up the results NSCA wrote to its command file.")
declare(SECTION, "Notification_Interval", integer(0, 10000), "60",
        "Re-notify a problem every this many interval lengths (0: once).")
declare(SECTION, "On_Call_Email", email_list, "",
        "Who gets Nagios' problem alerts (comma list; empty: [Global] last_resort_email).")
declare(SECTION, "Notify_Command", nonempty, "{vigil} -c {config} alert send --no-rate-limit",
        "Command that mails an alert: it gets --subject S --to ADDR and the body on stdin. "
        "{vigil} is the vigil program, {config} this configuration file.")
declare(SECTION, "Runbook_URL", text, "",
        "Where the runbooks are: every notes_url (services, hosts, sites) and the "
        "runbook link of every mail is <Runbook_URL>/<page>.html#<section>. Empty: "
        "<Web_URL>/runbooks (the HTML pages `vigil monitor web` renders from docs/). A "
        "path (relative to the config file) links the Markdown files themselves.")

# ------------------------------------------------- the dashboard (central)
declare(SECTION, "Web_Address", ip_address, "127.0.0.1",
        "Where the Nagios web UI (lighttpd) listens: loopback unless the NOC must reach it.")
declare(SECTION, "Web_Port", integer(1, 65535), "8080", "Its TCP port.")
declare(SECTION, "Web_URL", text, "",
        "The dashboard's address as people reach it, for links in mails "
        "(empty: http://Web_Address:Web_Port).")
declare(SECTION, "Web_User", nagios_name, "noc",
        "The dashboard login; acknowledgements, comments and downtimes carry it.")
declare(SECTION, "Web_Password", secret, "",
        "Its password (the web UI does not start without one); kept hashed in "
        "<Web_Dir>/htdigest.users, never on a command line.", secret=True)
declare(SECTION, "Web_Dir", text, "",
        "Generated web configuration, rendered runbooks and the graphs' RRD files "
        "(empty: <State_Dir>/web).")
declare(SECTION, "Lighttpd_Binary", path, "/usr/sbin/lighttpd", "The web server.")
declare(SECTION, "Rrdtool_Binary", path, "/usr/bin/rrdtool", "Stores and draws the graphs.")
declare(SECTION, "Perfdata_Interval_sec", integer(5, 3600), "15",
        "Nagios hands its perfdata file to the graphs this often.")


@dataclass(frozen=True)
class Timing:
    """The freshness thresholds of the central Nagios, checked against each other."""

    service_sec: int
    host_sec: int
    site_sec: int
    check_interval_sec: int
    latency_sec: int
    interval_length_sec: int
    reaper_sec: int
    notification_interval: int


def timing(cfg: Config) -> Timing:
    t = Timing(
        service_sec=cfg.get(SECTION, "Freshness_Threshold_sec"),
        host_sec=cfg.get(SECTION, "Host_Freshness_Threshold_sec"),
        site_sec=cfg.get(SECTION, "Site_Freshness_Threshold_sec"),
        check_interval_sec=cfg.get(SECTION, "Freshness_Check_Interval_sec"),
        latency_sec=cfg.get(SECTION, "Freshness_Latency_sec"),
        interval_length_sec=cfg.get(SECTION, "Interval_Length_sec"),
        reaper_sec=cfg.get(SECTION, "Check_Result_Reaper_sec"),
        notification_interval=cfg.get(SECTION, "Notification_Interval"),
    )
    # The one-alert-per-site design depends on this order (docs/monitor.md).
    gap = t.check_interval_sec
    if t.host_sec > t.service_sec - gap:
        raise ConfigError(cfg.source, SECTION, "Host_Freshness_Threshold_sec",
                          f"{t.host_sec} must be at most Freshness_Threshold_sec - "
                          f"Freshness_Check_Interval_sec = {t.service_sec - gap}")
    if t.site_sec > t.host_sec - gap:
        raise ConfigError(cfg.source, SECTION, "Site_Freshness_Threshold_sec",
                          f"{t.site_sec} must be at most Host_Freshness_Threshold_sec - "
                          f"Freshness_Check_Interval_sec = {t.host_sec - gap}")
    return t


def state_subdir(cfg: Config, option: str, default_name: str) -> Path:
    """An optional folder option; empty means ``<State_Dir>/<default_name>``."""
    value: str = cfg.get(SECTION, option)
    if value:
        if Path(value).is_absolute() or cfg.source.startswith("<"):
            return Path(value)
        return (Path(cfg.source).resolve().parent / value).resolve()
    return cfg.path("Site", "State_Dir") / default_name


def spool_dir(cfg: Config) -> Path:
    return state_subdir(cfg, "Spool_Dir", "monitor-spool")


def nagios_dir(cfg: Config) -> Path:
    return state_subdir(cfg, "Nagios_Dir", "nagios")


def web_dir(cfg: Config) -> Path:
    return state_subdir(cfg, "Web_Dir", "web")


def on_call(cfg: Config) -> list[str]:
    emails: list[str] = cfg.get(SECTION, "On_Call_Email")
    return emails or [cfg.get("Global", "last_resort_email")]


def config_server(cfg: Config) -> tuple[str, int]:
    """``[NSCA] Config_Server`` as (host, port)."""
    value: Any = cfg.get("NSCA", "Config_Server")
    if isinstance(value, tuple):
        return str(value[0]), int(value[1])
    return split_host_port(str(value))


def split_host_port(value: str, default_port: int = 5667) -> tuple[str, int]:
    host, sep, port_text = value.rpartition(":")
    if not sep:
        return value, default_port
    host = host.strip("[]")
    try:
        port = int(port_text)
    except ValueError:
        raise ValueError(f"{value!r} is not host:port") from None
    return host, port
