"""Options of the check plugins (declared once; collected by vigil.config.default_registry).

The checks file itself is ``[Monitor] Checks_File`` (the scheduler's option).
"""

from __future__ import annotations

from vigil.config import host, secret, text
from vigil.datatypes import Declarations

OPTIONS = Declarations()  # collected by vigil.config.default_registry
declare = OPTIONS.declare


def optional_host(value: str) -> str:
    return host(value) if value else ""


declare("Checks", "State_Dir", text, "",
        "Where plugins keep what they remember between runs (engine counters, log "
        "offsets). Empty means <[Site] State_Dir>/checks.")
declare("Checks", "NTP_Server", optional_host, "",
        "The site's NTP server the clock_offset check compares this clock with "
        "(empty: the check reports UNKNOWN until it is set).")
declare("Checks", "DB_User", text, "",
        "Read-only database account for the plugins (GRANT SELECT, PROCESS, REPLICATION "
        "CLIENT); empty: [Master] User. The only database credentials `vigil plugins "
        "install` gives the nagios user.")
declare("Checks", "DB_Password", secret, "", "Password of [Checks] DB_User.", secret=True)
