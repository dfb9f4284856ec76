"""The durable database's own latency: the floor under an engine's p99.

Every Access-Accept waits for at least one transaction of the engine: a
round trip with its statements, then a COMMIT that MariaDB flushes (redo
log and binlog). On this VM one such transaction from a client that does
nothing else took 1.3 ms at the median and 5 to 10 ms at the 99th
percentile, depending on the minute (the host's other guests: ``vmstat``
showed 10-24 % steal). A goal such as "p99 under 10 ms" can then only be
read beside what the database gives a bare client at the same minute.

:func:`bare_transactions` is that client: one PyMySQL connection, the shape
of a reservation (a conditional UPDATE of an account row and the INSERT of
a call's row, sent in one round trip), then COMMIT, one at a time, paced at
``rate`` per second, on its own tables in its own database. It runs right
after the engine's paced run, not during it, so as not to load the
database the engine is being measured on.
"""

from __future__ import annotations

import contextlib
import statistics
import time
from dataclasses import dataclass
from typing import Any

ROWS = 1000  # accounts, as bench_radius.py's


@dataclass(frozen=True)
class FloorFigures:
    samples: int
    p50_ms: float
    p99_ms: float
    max_ms: float
    rate: float  # transactions/s achieved (below the pace: the database was slower)

    def line(self) -> str:
        if not self.samples:
            return "no bare transaction measured"
        return (f"one bare durable transaction (UPDATE + INSERT in one round trip, then "
                f"COMMIT) from a client doing nothing else, {self.samples} at "
                f"{self.rate:.0f}/s: p50 {self.p50_ms:.2f} ms, p99 {self.p99_ms:.2f} ms, "
                f"max {self.max_ms:.1f} ms")


def _prepare(cur: Any) -> None:
    cur.execute("CREATE TABLE IF NOT EXISTS floor_accounts (id INT PRIMARY KEY, "
                "reserved DECIMAL(16,5) NOT NULL, calls INT NOT NULL) ENGINE=InnoDB")
    cur.execute("CREATE TABLE IF NOT EXISTS floor_calls (id INT AUTO_INCREMENT PRIMARY KEY, "
                "conf_id VARCHAR(128) NOT NULL, leg VARCHAR(16) NOT NULL, account_id INT, "
                "reserved DECIMAL(16,5) NOT NULL, UNIQUE KEY (conf_id, leg)) ENGINE=InnoDB")
    cur.execute("TRUNCATE floor_calls")
    cur.execute("DELETE FROM floor_accounts")
    cur.execute("INSERT INTO floor_accounts VALUES " +
                ", ".join(f"({i}, 0, 0)" for i in range(ROWS)))


def bare_transactions(connect: Any, rate: int = 1000, seconds: float = 5.0) -> FloorFigures:
    """``connect(client_flag=...)`` gives a PyMySQL connection to a scratch
    database, not in autocommit; the transactions' latencies, summarised."""
    from pymysql.constants import CLIENT

    lat: list[float] = []
    with contextlib.closing(connect(client_flag=CLIENT.MULTI_STATEMENTS)) as conn, \
            conn.cursor() as cur:
        _prepare(cur)
        conn.commit()
        cur.execute("SET SESSION TRANSACTION ISOLATION LEVEL READ COMMITTED")
        total = int(rate * seconds)
        t0 = time.perf_counter()
        for i in range(total):
            due = t0 + i / rate
            while (now := time.perf_counter()) < due:
                time.sleep(min(due - now, 0.0005))
            k = i % ROWS
            start = time.perf_counter()
            cur.execute("UPDATE floor_accounts SET reserved = reserved + 1, calls = calls + 1 "
                        "WHERE id = %s AND reserved < 1000000000; "
                        "INSERT INTO floor_calls (conf_id, leg, account_id, reserved) "
                        "VALUES (%s, 'authorize', %s, 1)", (k, f"floor-{i}", k))
            while cur.nextset():
                pass
            conn.commit()
            lat.append((time.perf_counter() - start) * 1000)
        elapsed = time.perf_counter() - t0
    if not lat:
        return FloorFigures(0, 0.0, 0.0, 0.0, 0.0)
    p99 = statistics.quantiles(lat, n=100)[98] if len(lat) > 1 else lat[0]
    return FloorFigures(len(lat), statistics.median(lat), p99, max(lat), len(lat) / elapsed)
