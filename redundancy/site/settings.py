"""``[Standby]``, ``[Delta]`` and ``[Watchdog]``: the secondary site's options, declared once.

Collected by ``vigil.config.default_registry``. Passwords are secrets: never
logged, never on a command line.
"""

from __future__ import annotations

from vigil.config import boolean, choice, db_url, integer, secret, text
from vigil.datatypes import Declarations

OPTIONS = Declarations()  # collected by vigil.config.default_registry
declare = OPTIONS.declare


def host_port(value: str) -> str:
    """``host:port`` or empty (the witness is optional)."""
    if not value:
        return value
    host, sep, port = value.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"{value!r} is not host:port")
    return value


# ---------------------------------------------------------------- [Standby]
declare("Standby", "Primary_URL", db_url, "sqlite:///primary.db",
        "SQLAlchemy URL (without password) of the PRIMARY site's master database: what the "
        "watchdog probes and where failback locks funds and transfers xDRs. The stand-by "
        "database itself is this site's [Master] URL.")
declare("Standby", "Primary_User", text, "", "User on the primary master (overrides the URL's).")
declare("Standby", "Primary_Password", secret, "", "Password of Primary_User.", secret=True)

# ------------------------------------------------------------------ [Delta]
declare("Delta", "URL", db_url, "sqlite:///delta.db",
        "SQLAlchemy URL of the delta database (on the stand-by server): every charge, "
        "reservation and xDR made in stand-alone mode. A relative sqlite path is taken "
        "inside [Site] State_Dir.")
declare("Delta", "User", text, "", "Delta database user (overrides the URL's).")
declare("Delta", "Password", secret, "", "Password of the delta user.", secret=True)
declare("Delta", "Skip_Binlog", boolean, "Yes",
        "On MariaDB, write the delta without binary logging, so its rows never become "
        "errant GTIDs on the stand-by replica (needs SUPER or BINLOG ADMIN).")
declare("Delta", "Connect_Timeout_sec", integer(1, 60), "2",
        "Connect timeout towards the delta database; unreachable means no RADIUS answer.")
declare("Delta", "Failback_Batch", integer(1, 100000), "10000",
        "xDRs moved to the primary per transaction during failback.")

# --------------------------------------------------------------- [Watchdog]
declare("Watchdog", "Probe_Interval_sec", integer(1, 60), "1", "Seconds between probe rounds.")
declare("Watchdog", "Failed_Probes", integer(1, 100), "3",
        "Consecutive rounds in which the paths agree the primary is gone before this site "
        "switches to stand-alone (MaxScale's failcount).")
declare("Watchdog", "Connect_Timeout_sec", integer(1, 30), "1",
        "Connect timeout of the direct probe of the primary database.")
declare("Watchdog", "Read_Timeout_sec", integer(1, 30), "2",
        "Read timeout of the direct probe (a hung primary accepts but never answers).")
declare("Watchdog", "Heartbeat_Max_Age_sec", integer(1, 3600), "5",
        "The stand-by's replicated heartbeat older than this counts as 'primary not seen'.")
declare("Watchdog", "Primary_Radius", host_port, "",
        "host:port of the primary RADIUS (auth) for a self-test probe; empty: path not used.")
declare("Watchdog", "Witness", host_port, "",
        "host:port of `vigil site witness` on a third site; empty: no witness.")
declare("Watchdog", "Partition_Policy", choice("serve", "witness"), "serve",
        "serve: flip when this site's paths agree (the source: both sites may serve during "
        "a partition, the restrictions and funds lock keep integrity); witness: also "
        "require the witness to have lost the primary (no split service, but a lost "
        "witness keeps this site silent).")
declare("Watchdog", "Min_Standalone_sec", integer(0, 86400), "300",
        "Shortest stay in stand-alone before an automatic failback (no flapping).")
declare("Watchdog", "Failback_Healthy_sec", integer(0, 86400), "60",
        "How long every path must see the primary healthy before automatic failback.")
declare("Watchdog", "Auto_Failback", boolean, "Yes",
        "Fail back automatically once the primary has been healthy Failback_Healthy_sec.")
declare("Watchdog", "Quiet_After_Failback_sec", integer(0, 86400), "600",
        "After a failback, go stand-alone again only if EVERY path says the primary is dead.")
declare("Watchdog", "Hook", text, "",
        "Command run after a switch, with VIGIL_SITE_MODE=standalone|standby in its "
        "environment (e.g. point the SIP cluster at this site). Empty: none.")
declare("Watchdog", "Hook_Timeout_sec", integer(1, 600), "30", "Longest the hook may run.")


def split_host_port(value: str) -> tuple[str, int]:
    host, _, port = value.rpartition(":")
    return host.strip("[]"), int(port)


declare("Watchdog", "Witness_Listen", host_port, "127.0.0.1:5668",
        "Where `vigil site witness` (on the central server) listens for the watchdogs.")
