"""The core's options of ``vigil.conf``, declared once.

The sections the source system has (``[Global]``, ``[Master]``,
``[Fraud_Detection]``, ``[Node IP Cache]``, ``[Email]``, ``[Radius]``,
``[Log]``, ``[Call_Cleanup]``) are declared here with their original names and
meanings, with Vigil's own ``[Site]`` and ``[Supervisor]``. Each room declares
its own sections in its ``settings`` module (``radcheck/settings.py`` has the
source's ``[Self Test]``); ``vigil.config.default_registry`` collects them all.
This module imports only the leaf ``vigil.datatypes``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from vigil.datatypes import (
    Declarations,
    boolean,
    choice,
    db_url,
    email,
    host,
    integer,
    nonempty,
    path,
    port,
    text,
)
from vigil.datatypes import secret as secret_text

OPTIONS = Declarations()
declare = OPTIONS.declare

# ------------------------------------------------------------------ [Site]
declare("Site", "Role", choice("primary", "secondary", "central", "all"), "all",
        "What this machine is: primary or secondary site, the central "
        "(configuration) server, or all of them on one machine (demo).")
declare("Site", "Name", nonempty, "site-a", "This site's name, as Nagios shows it.")
declare("Site", "Host_Name", nonempty, "vigil-primary",
        "This server's host name in Nagios.")
declare("Site", "State_Dir", path, "/var/lib/vigil",
        "Where state files, spools and the embedded SQLite database live.")
declare("Site", "Log_Dir", path, "/var/log/vigil",
        "Where each supervised program writes its own log.")

# ---------------------------------------------------------------- [Global]
declare("Global", "last_resort_email", email, "admin@localhost.localdomain",
        "Who receives the e-mail alert when a critical condition is detected.")
declare("Global", "email_header_from", email, "vigil@localhost.localdomain",
        "What appears in the From: field of e-mail alerts.")
declare("Global", "Suspicious_Time_Threshold_sec", integer(0), "86400",
        "Largest accepted difference between a gateway's time and ours.")
declare("Global", "SQL_Trace", boolean, "0",
        "Log every SQL statement (debug only: huge logs).")

# ---------------------------------------------------------------- [Master]
declare("Master", "URL", db_url, "sqlite:///billing.db",
        "SQLAlchemy URL of the billing database, without the password. "
        "A relative sqlite path is taken inside [Site] State_Dir.")
declare("Master", "User", text, "", "Database user (overrides the URL's).")
declare("Master", "Password", secret_text, "", "Database password.", secret=True)
declare("Master", "Connect_Timeout_sec", integer(1, 600), "5",
        "How long to wait for the database to accept a connection.")
declare("Master", "Pool_Size", integer(1, 200), "10", "Connections kept open.")

# ------------------------------------------------------- [Fraud_Detection]
declare("Fraud_Detection", "Active", boolean, "Yes",
        "Prevent simultaneous logins of debit accounts.")
declare("Fraud_Detection", "Test_Mode", boolean, "No",
        "Allow simultaneous logins but send an e-mail alert.")
declare("Fraud_Detection", "Recovery_Time_sec", integer(1), "1800",
        "How long a successful debit login is remembered.")

# -------------------------------------------------------- [Node IP Cache]
declare("Node IP Cache", "Cache_Cleanup_Time_sec", integer(1), "600",
        "How often nodes and connections are re-read from the database "
        "(SIGHUP forces it).")

# ----------------------------------------------------------------- [Email]
declare("Email", "Max_Sequential_Emails", integer(1), "5",
        "At most this many alerts within Look_Behind_sec; the rest are counted.")
declare("Email", "Look_Behind_sec", integer(1), "450",
        "The window for Max_Sequential_Emails.")
declare("Email", "Mail_Templates_Dir", path, "Mail_Templates",
        "Folder of alert templates (relative to the config file).")
declare("Email", "SMTP_Host", host, "127.0.0.1", "SMTP relay for alerts.")
declare("Email", "SMTP_Port", port, "25", "SMTP port.")
declare("Email", "SMTP_Timeout_sec", integer(1, 300), "10",
        "Connect and read timeout towards the SMTP relay.")

# ---------------------------------------------------------------- [Radius]
declare("Radius", "Host", host, "127.0.0.1", "Address the RADIUS server listens on.")
declare("Radius", "Auth_Port", port, "1812", "Authentication/authorization port.")
declare("Radius", "Acct_Port", port, "1813", "Accounting port.")
declare("Radius", "Dictionary", text, "",
        "RADIUS dictionary file; empty means the one shipped with Vigil.")
declare("Radius", "Program", nonempty, "radiusd",
        "The supervisor program name of the RADIUS engine (radcheck restarts it).")
declare("Radius", "Commit_Batch", integer(1, 1000), "64",
        "Accounting requests committed together in one transaction (group commit).")
declare("Radius", "Commit_Threads", integer(1, 8), "2",
        "Batches an engine process has at the database at once (MariaDB): with 2 the next "
        "batch runs its statements while this one's COMMIT is flushed, in queue order "
        "(docs/billing.md). SQLite always uses one.")

# ------------------------------------------------------------------- [Log]
declare("Log", "Log_To", choice("File", "Console", "Syslog"), "File",
        "Where the billing log goes.")
declare("Log", "Log_Dest", path, "/var/log/vigil/billing.log",
        "Log file, or syslog:<facility>:<priority>.")
declare("Log", "Level", choice("DEBUG", "INFO", "WARNING", "ERROR"), "INFO",
        "Least severe event written.")

# ---------------------------------------------------------- [Call_Cleanup]
declare("Call_Cleanup", "Radius_Retransmits", integer(0, 100), "5",
        "Retransmits a gateway may still send.")
declare("Call_Cleanup", "Radius_Timeout", integer(1, 600), "3",
        "Seconds between a gateway's retransmits.")
declare("Call_Cleanup", "Alive_Interval", integer(1), "60",
        "Interval of keep-alive (interim) accounting.")
declare("Call_Cleanup", "Incoming_Session_Lifetime", integer(0), "10",
        "Call lifetime after the incoming leg has been disconnected.")
declare("Call_Cleanup", "Default_Lifetime", integer(1), "120",
        "Default lifetime of a call in the call cache.")

# -------------------------------------------------------------- [Supervisor]
declare("Supervisor", "Socket_File", text, "",
        "Unix socket of supervisord's XML-RPC interface (radcheck restarts the RADIUS "
        "program through it). Empty means <State_Dir>/supervisor.sock.")
declare("Supervisor", "Config_File", path, "supervisord.conf",
        "supervisord configuration that `vigil supervisord` runs (relative to this file).")
declare("Supervisor", "RPC_Timeout_sec", integer(1, 600), "30",
        "How long a call to supervisord may take; must exceed the programs' stopwaitsecs.")

# ----------------------------------------------------- additions to [Email]
declare("Email", "Flood_State_File", text, "",
        "Memory of the e-mail flood limiter (when the last alerts went out, how many "
        "were held back), so a restart does not reset it. Empty means "
        "<State_Dir>/alerts-flood.json.")


# ------------------------------------------------------- cross-option rules
@OPTIONS.rule("Radius")
def _ports_distinct(v: Mapping[tuple[str, str], Any]) -> tuple[str, str, str] | None:
    if v[("radius", "auth_port")] == v[("radius", "acct_port")]:
        return ("Radius", "Acct_Port",
                f"must differ from Auth_Port (both are {v[('radius', 'acct_port')]})")
    return None
