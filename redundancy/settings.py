"""``[Replication]``: the master/replica pair that ``vigil replication`` watches and repairs.

Declared once here (collected by ``vigil.config.default_registry``). Credentials come either from
``User``/``Password`` or from a MySQL option file (mode 0600) named by
``Option_File``; they never reach a command line.
"""

from __future__ import annotations

import os
from pathlib import Path

from vigil.config import boolean, choice, host, integer, port, secret, text
from vigil.datatypes import Declarations

OPTIONS = Declarations()  # collected by vigil.config.default_registry
declare = OPTIONS.declare

SECTION = "Replication"


def option_file(value: str) -> str:
    """An optional MySQL option file that must not be readable by others."""
    if not value:
        return value
    p = Path(value)
    try:
        mode = p.stat().st_mode
    except FileNotFoundError:
        raise ValueError(f"{value!r} does not exist") from None
    except OSError as exc:
        raise ValueError(f"{value!r} cannot be read: {exc.strerror}") from None
    if mode & 0o077:
        raise ValueError(f"{value!r} is readable by others (mode {mode & 0o777:o}); "
                         "chmod 600 it, it holds a password")
    if not os.access(p, os.R_OK):
        raise ValueError(f"{value!r} is not readable by this user")
    return value


def table_name(value: str) -> str:
    parts = value.split(".")
    if len(parts) != 2 or not all(p.replace("_", "").isalnum() for p in parts):
        raise ValueError(f"{value!r} is not database.table (letters, digits, _)")
    return value


def database_list(value: str) -> str:
    for name in (v.strip() for v in value.split(",")):
        if name and not name.replace("_", "").replace("-", "").isalnum():
            raise ValueError(f"{name!r} is not a database name (letters, digits, _ and -)")
    return value


declare(SECTION, "Master_Host", host, "127.0.0.1", "Address of the MySQL/MariaDB master.")
declare(SECTION, "Master_Port", port, "3306", "Port of the master.")
declare(SECTION, "Replica_Host", host, "127.0.0.1",
        "Address of the replica (the reports database, or the secondary site's stand-by).")
declare(SECTION, "Replica_Port", port, "3307", "Port of the replica.")
declare(SECTION, "User", text, "root",
        "Administrative user on both servers (needs SUPER or the REPLICATION/BINLOG ADMIN "
        "privileges, RELOAD and SELECT on every table). Ignored when Option_File names one.")
declare(SECTION, "Password", secret, "", "Password of User.", secret=True)
declare(SECTION, "Option_File", option_file, "",
        "A MySQL option file (mode 0600) with a [client] user= and password=; used instead "
        "of User/Password when set.")
declare(SECTION, "Replication_User", text, "repl",
        "The account the replica uses to read the master's binlog (CHANGE MASTER TO "
        "MASTER_USER); only needed when the replica has lost its settings (wiped datadir).")
declare(SECTION, "Replication_Password", secret, "", "Password of Replication_User.",
        secret=True)
declare(SECTION, "Databases", database_list, "",
        "Comma-separated databases to re-seed and checksum; empty means every database on the "
        "master except mysql, information_schema, performance_schema and sys.")
declare(SECTION, "Method", choice("auto", "skip-row", "dump", "backup"), "auto",
        "Default repair method; auto picks the least disruptive one that fits the fault.")
declare(SECTION, "Backup_Threshold_MB", integer(0), "2048",
        "In auto mode, re-seed with mariabackup instead of mariadb-dump above this much data "
        "(when Replica_Datadir and Replica_Start_Command are set).")
declare(SECTION, "Heartbeat_Table", table_name, "vigil.heartbeat",
        "Table written on the master by `vigil replication heartbeat`; its age on the replica "
        "is the heartbeat lag.")
declare(SECTION, "Connect_Timeout_sec", integer(1, 600), "5",
        "How long to wait for either server to accept a connection.")
declare(SECTION, "Query_Timeout_sec", integer(1, 86400), "120",
        "Longest a single statement may take (a long CHECKSUM TABLE counts).")
declare(SECTION, "Catch_Up_Timeout_sec", integer(1, 86400), "600",
        "How long verification waits for the replica to reach the master's GTID position.")
declare(SECTION, "Max_Row_Fixes", integer(1, 10000), "20",
        "Conflicting rows fixed one by one before the row method gives up.")
declare(SECTION, "Disk_Reserve_MB", integer(0), "512",
        "Space that must remain free on the replica's disk after the snapshot is written.")
declare(SECTION, "Lock_File", text, "",
        "Keeps two repairs from running at once; empty means "
        "<[Site] State_Dir>/replication-repair.lock.")
declare(SECTION, "Work_Dir", text, "",
        "Where mariabackup stages the new datadir (same file system as Replica_Datadir, so "
        "the swap is a rename); empty means next to Replica_Datadir.")
declare(SECTION, "Replica_Datadir", text, "",
        "The replica's data directory on this machine (backup method only).")
declare(SECTION, "Replica_Start_Command", text, "",
        "Shell command that starts the replica's server (backup method only), e.g. "
        "`systemctl start mariadb@replica`.")
declare(SECTION, "Replica_Stop_Command", text, "",
        "Shell command that stops the replica's server; empty means SHUTDOWN over SQL.")
declare(SECTION, "Keep_Old_Datadir", boolean, "No",
        "After a verified backup re-seed, keep the replaced datadir as <datadir>.old-<time>.")
