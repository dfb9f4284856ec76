"""Version-specific SQL, kept in one resolver table.

Like Ansible's ``community.mysql`` ``mysql_replication`` module, every
statement whose spelling depends on the server is looked up here by name and
server version, so the rest of the code never tests versions. Only MariaDB
(10.2 and later: GTID with ``MASTER_USE_GTID`` and ``MASTER_GTID_WAIT``) can
be repaired; MySQL's GTIDs are a different format.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from redundancy.replication.errors import ReplicationError

Version = tuple[int, int, int]

# name -> [(first MariaDB version that understands it, SQL)], newest last.
_TABLE: dict[str, list[tuple[Version, str]]] = {
    "replica_status": [((10, 2, 0), "SHOW SLAVE STATUS"),
                       ((10, 5, 1), "SHOW REPLICA STATUS")],
    "start_replica": [((10, 2, 0), "START SLAVE"), ((10, 5, 1), "START REPLICA")],
    "stop_replica": [((10, 2, 0), "STOP SLAVE"), ((10, 5, 1), "STOP REPLICA")],
    "start_replica_until_gtid": [
        ((10, 2, 0), "START SLAVE UNTIL master_gtid_pos = %s"),
        ((10, 5, 1), "START REPLICA UNTIL master_gtid_pos = %s")],
    "reset_replica": [((10, 2, 0), "RESET SLAVE"), ((10, 5, 1), "RESET REPLICA")],
    "replica_hosts": [((10, 2, 0), "SHOW SLAVE HOSTS"), ((10, 5, 1), "SHOW REPLICA HOSTS")],
    "binlogs": [((10, 2, 0), "SHOW BINARY LOGS")],
    "reset_binlog": [((10, 2, 0), "RESET MASTER")],
    "gtid_wait": [((10, 2, 0), "SELECT MASTER_GTID_WAIT(%s, %s)")],
    "gtid_positions": [((10, 2, 0),
                        "SELECT @@GLOBAL.gtid_binlog_pos, @@GLOBAL.gtid_binlog_state, "
                        "@@GLOBAL.gtid_slave_pos, @@GLOBAL.gtid_current_pos")],
    "set_gtid_slave_pos": [((10, 2, 0), "SET GLOBAL gtid_slave_pos = %s")],
    "change_master_gtid": [((10, 2, 0),
                            "CHANGE MASTER TO MASTER_HOST = %s, MASTER_PORT = %s, "
                            "MASTER_USER = %s, MASTER_PASSWORD = %s, "
                            "MASTER_USE_GTID = slave_pos")],
    "change_master_use_gtid": [((10, 2, 0), "CHANGE MASTER TO MASTER_USE_GTID = slave_pos")],
    "skip_one_event_group": [((10, 2, 0), "SET GLOBAL sql_slave_skip_counter = 1")],
    "identity": [((10, 2, 0),
                  "SELECT @@server_id, @@hostname, @@port, @@datadir, @@read_only, "
                  "@@log_bin, @@version, @@gtid_domain_id")],
    "snapshot_position": [((10, 2, 0), "SHOW STATUS LIKE 'binlog_snapshot_%'")],
    "binlog_gtid_pos": [((10, 2, 0), "SELECT BINLOG_GTID_POS(%s, %s)")],
    "no_binlog_session": [((10, 2, 0), "SET SESSION sql_log_bin = 0")],
    "checksum_table": [((10, 2, 0), "CHECKSUM TABLE {table}")],
}


@dataclass(frozen=True)
class Flavor:
    """What a server is, as far as the SQL it understands."""

    mariadb: bool
    version: Version
    text: str

    def sql(self, name: str) -> str:
        return resolve(name, self)


def parse_version(text: str) -> Flavor:
    m = re.match(r"^(\d+)\.(\d+)\.(\d+)", text)
    if not m:
        raise ReplicationError(f"cannot read the server version {text!r}")
    version = (int(m[1]), int(m[2]), int(m[3]))
    return Flavor("mariadb" in text.lower(), version, text)


def resolve(name: str, flavor: Flavor) -> str:
    """The spelling of statement ``name`` for this server."""
    if not flavor.mariadb:
        raise ReplicationError(
            f"server {flavor.text} is MySQL; Vigil repairs MariaDB replication only "
            "(MySQL GTIDs are a different format)")
    candidates = [(v, sql) for v, sql in _TABLE[name] if v <= flavor.version]
    if not candidates:
        first = ".".join(map(str, _TABLE[name][0][0]))
        raise ReplicationError(f"MariaDB {flavor.text} is too old: {name} needs {first}")
    return candidates[-1][1]


def quote_ident(name: str) -> str:
    """A backquoted identifier (``db``.``table`` when given a dotted name)."""
    return ".".join("`" + part.replace("`", "``") + "`" for part in name.split("."))
