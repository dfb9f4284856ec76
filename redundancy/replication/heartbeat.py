"""A heartbeat row written on the master and read on the replica.

``Seconds_Behind_Master`` reads 0 right after ``START SLAVE`` even when the
replica is far behind, and NULL whenever a thread is stopped; a row stamped
with the master's clock and carried by replication itself does not lie.
``vigil replication heartbeat`` keeps writing it (under supervisor).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from redundancy.replication.errors import ReplicationError
from redundancy.replication.server import Server
from redundancy.replication.sql import quote_ident

log = logging.getLogger(__name__)


def ensure_table(master: Server, table: str) -> None:
    db = table.split(".")[0]
    master.execute(f"CREATE DATABASE IF NOT EXISTS {quote_ident(db)}")
    master.execute(f"CREATE TABLE IF NOT EXISTS {quote_ident(table)} ("
                   "server_id INT UNSIGNED NOT NULL PRIMARY KEY, "
                   "ts DATETIME(6) NOT NULL) ENGINE=InnoDB")


def beat(master: Server, table: str) -> None:
    master.execute(f"REPLACE INTO {quote_ident(table)} (server_id, ts) "
                   "VALUES (@@server_id, UTC_TIMESTAMP(6))")


def _stamp(server: Server, table: str, master_server_id: int) -> float | None:
    try:
        return server.scalar(
            f"SELECT UNIX_TIMESTAMP(ts) - UNIX_TIMESTAMP(UTC_TIMESTAMP(6)) "
            f"FROM {quote_ident(table)} WHERE server_id = %s", (master_server_id,))
    except ReplicationError as exc:
        if "1146" in str(exc) or "1049" in str(exc):  # no such table / database yet
            return None
        raise


def lag_seconds(replica: Server, master: Server | None, table: str,
                master_server_id: int | None) -> float | None:
    """How far the replica's copy of the heartbeat trails the master's.

    With the master reachable: master's stamp minus the replica's (exact to
    the beat interval, right even if the writer stopped). Without it: the
    age of the replica's stamp on the replica's clock. None: no heartbeat yet.
    """
    if master_server_id is None:
        return None
    replica_age = _stamp(replica, table, master_server_id)
    if replica_age is None:
        return None
    if master is None:
        return max(0.0, -float(replica_age))
    master_age = _stamp(master, table, master_server_id)
    if master_age is None:
        return None
    return max(0.0, float(master_age) - float(replica_age))


def run(master: Server, table: str, interval: float, count: int | None = None,
        sleep: Callable[[float], None] = time.sleep) -> int:
    """Write a beat every ``interval`` seconds (``count`` beats, or forever)."""
    ensure_table(master, table)
    done = 0
    while count is None or done < count:
        beat(master, table)
        done += 1
        if count is None or done < count:
            sleep(interval)
    return done
