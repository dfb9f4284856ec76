"""The MariaDB fast path of failback: rows travel as server-quoted VALUES lists.

The delta server writes a batch (or a lock's per-owner sums) as ONE string
``(...),(...)``, every field passed through QUOTE() (money as decimal text,
so exact; NULL stays the bare word NULL); the primary loads it into a
temporary table of the failback's connection and every statement of the
batch reads that table. No row is parsed or escaped in Python, which is
several times faster here than executemany or JSON_TABLE.
"""

from __future__ import annotations

from sqlalchemy.engine import Connection

XDR_FIELDS = ("seq", "kind", "owner_pk", "customer_pk", "adjustment", "customer_adjustment",
              "connection_pk", "session_key", "conf_id", "cli", "cld", "peer_ip",
              "connect_time", "disconnect_time", "duration", "charged_duration", "amount",
              "tariff", "rate_prefix", "disconnect_cause", "created_at", "stop_key")
# One string: "(...),(...)" with every field QUOTE()d by the server (money as
# decimal text: exact). NULL stays the bare word NULL.
READ_PACKED = ("SELECT COUNT(*), MAX(seq), GROUP_CONCAT(CONCAT('(', CONCAT_WS(',', "
               + ", ".join(f"QUOTE({f})" for f in XDR_FIELDS)
               + "), ')') ORDER BY seq SEPARATOR ',') FROM (SELECT * FROM delta_xdrs "
               "WHERE seq > :after ORDER BY seq LIMIT :n) AS b")
COMMON = ("LEFT(CONCAT(:site, '#', j.seq, '|', j.session_key), 191), j.conf_id, j.cli, j.cld, "
          "j.connect_time, j.disconnect_time, j.duration, j.charged_duration, j.amount, "
          "j.tariff, j.rate_prefix, j.disconnect_cause, j.created_at")
# The batch is loaded once into a temporary table of this connection; every
# statement after it reads that table.
BATCH_TABLE = (
    # MEMORY: the fastest here; sized for a [Delta] Failback_Batch of 100,000
    "SET SESSION max_heap_table_size = 536870912",
    "CREATE TEMPORARY TABLE IF NOT EXISTS failback_batch (seq BIGINT PRIMARY KEY, "
    "kind VARCHAR(8), owner_pk INT, customer_pk INT, adjustment DECIMAL(16,5), "
    "customer_adjustment DECIMAL(16,5), connection_pk INT, session_key VARCHAR(191), "
    "conf_id VARCHAR(128), cli VARCHAR(64), cld VARCHAR(64), peer_ip VARCHAR(45), "
    "connect_time DATETIME, disconnect_time DATETIME, duration INT, charged_duration INT, "
    "amount DECIMAL(16,5), tariff VARCHAR(64), rate_prefix VARCHAR(32), "
    "disconnect_cause VARCHAR(16), created_at DATETIME, "
    "stop_key VARCHAR(191) COLLATE utf8mb4_nopad_bin) ENGINE=MEMORY",
    "DELETE FROM failback_batch",
)
APPLY_BATCH = (
    # the Stops charged in stand-alone: a retransmission to the primary is a duplicate
    "INSERT IGNORE INTO processed_accounting (session_key, processed_at) "
    "SELECT DISTINCT stop_key, UTC_TIMESTAMP() FROM failback_batch WHERE stop_key <> ''",
    "INSERT INTO account_xdrs (session_key, conf_id, cli, cld, connect_time, disconnect_time, "
    "duration, charged_duration, amount, tariff, rate_prefix, disconnect_cause, created_at, "
    f"account_id, node_ip) SELECT {COMMON}, j.owner_pk, j.peer_ip FROM failback_batch AS j "
    "WHERE j.kind = 'account' ORDER BY j.seq",
    "INSERT INTO vendor_xdrs (session_key, conf_id, cli, cld, connect_time, disconnect_time, "
    "duration, charged_duration, amount, tariff, rate_prefix, disconnect_cause, created_at, "
    f"vendor_id, connection_id, remote_ip) SELECT {COMMON}, j.owner_pk, j.connection_pk, "
    "j.peer_ip FROM failback_batch AS j WHERE j.kind = 'vendor' ORDER BY j.seq",
    "UPDATE site_funds_locks AS l JOIN (SELECT owner_pk, SUM(adjustment) AS s FROM "
    "failback_batch WHERE kind = 'account' GROUP BY owner_pk) AS t ON l.owner_pk = t.owner_pk "
    "SET l.amount = l.amount - t.s WHERE l.site = :site AND l.kind = 'account'",
    "UPDATE site_funds_locks AS l JOIN (SELECT customer_pk, SUM(customer_adjustment) AS s "
    "FROM failback_batch WHERE customer_pk IS NOT NULL GROUP BY customer_pk) AS t "
    "ON l.owner_pk = t.customer_pk "
    "SET l.amount = l.amount - t.s WHERE l.site = :site AND l.kind = 'customer'",
    "UPDATE vendors AS v JOIN (SELECT owner_pk, SUM(adjustment) AS s FROM "
    "failback_batch WHERE kind = 'vendor' GROUP BY owner_pk) AS t ON v.id = t.owner_pk "
    "SET v.balance = v.balance + t.s",
)


# Per-owner sums of a lock, summed by the delta server and shipped as one
# VALUES list: 'account' rows (and their count and total), 'customer' rows.
LOCK_VALUES = (
    "SELECT SUM(kind = 'account'), SUM(IF(kind = 'account', s, 0)), "
    "GROUP_CONCAT(CONCAT('(', QUOTE(kind), ',', QUOTE(owner), ',', QUOTE(s), ')')) FROM ("
    "SELECT 'account' AS kind, owner_pk AS owner, SUM(adjustment) AS s FROM delta_xdrs "
    "WHERE seq > :a AND seq <= :b AND kind = 'account' GROUP BY owner_pk UNION ALL "
    "SELECT 'customer', customer_pk, SUM(customer_adjustment) FROM delta_xdrs "
    "WHERE seq > :a AND seq <= :b AND customer_pk IS NOT NULL GROUP BY customer_pk) AS t "
    "WHERE s <> 0")
LOCK_TABLE = (
    "CREATE TEMPORARY TABLE IF NOT EXISTS failback_lock (kind VARCHAR(8), owner_pk INT, "
    "amount DECIMAL(16,5), PRIMARY KEY (kind, owner_pk)) ENGINE=MEMORY",
    "DELETE FROM failback_lock",
)
LOCK_APPLY = (
    "UPDATE accounts AS a JOIN failback_lock AS l ON l.kind = 'account' AND l.owner_pk = a.id "
    "SET a.balance = a.balance + l.amount",
    "UPDATE customers AS c JOIN failback_lock AS l ON l.kind = 'customer' "
    "AND l.owner_pk = c.id SET c.balance = c.balance + l.amount",
    "INSERT INTO site_funds_locks (site, kind, owner_pk, amount) SELECT :site, kind, owner_pk, "
    "amount FROM failback_lock ON DUPLICATE KEY UPDATE "
    "amount = site_funds_locks.amount + VALUES(amount)",
)


def insert_values(conn: Connection, table: str, values: str) -> None:
    """``INSERT INTO table VALUES <values>`` where ``values`` came from QUOTE() on
    our own delta server (both sides without NO_BACKSLASH_ESCAPES), sent
    without parameters so that the driver does not %-format it."""
    raw = conn.connection.dbapi_connection
    assert raw is not None
    cur = raw.cursor()
    try:
        cur.execute("SET SESSION sql_mode = REPLACE(@@sql_mode, 'NO_BACKSLASH_ESCAPES', '')")
        cur.execute(f"INSERT INTO {table} VALUES " + values)
    finally:
        cur.close()
