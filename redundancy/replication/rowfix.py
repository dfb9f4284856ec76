"""Fix one conflicting row on the replica, or forget errant GTIDs, without re-seeding.

- 1062 (duplicate key): the replica already holds a row with the key the
  master's event writes. Delete the replica's row (not binlogged) and let the
  event re-create it as the master wrote it.
- 1032 (row not found): the master's event updates or deletes a row the
  replica lacks. Read the event's row images from the master's binlog
  (``mariadb-binlog --read-from-remote-server``), copy the master's current
  version of each missing row to the replica, and let the event apply. When
  the master has no such row either, skip that one event group, and only if
  every row it touches is already the same on both sides.
- 1950 / errant GTIDs: transactions written on the replica itself. Forget
  them with ``RESET MASTER`` on the replica (refused when other servers
  replicate from it); any data they changed surfaces as a row conflict or in
  the checksums.
"""

from __future__ import annotations

import logging
import re
import subprocess
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from redundancy.replication.diagnose import ER_DUP_ENTRY, RowConflict
from redundancy.replication.errors import ReplicationError
from redundancy.replication.server import Server, option_file
from redundancy.replication.sql import quote_ident

log = logging.getLogger(__name__)
Report = Callable[[str], None]


class RowFixImpossible(ReplicationError):
    """This conflict cannot be fixed row by row; a re-seed is needed."""


@dataclass
class RowEvent:
    kind: str                                   # INSERT, UPDATE, DELETE
    table: str                                  # db.table
    before: dict[int, Any] = field(default_factory=dict)   # WHERE image (@n -> value)
    after: dict[int, Any] = field(default_factory=dict)    # SET image

    @property
    def image(self) -> dict[int, Any]:
        """The image that identifies the row the event looks for."""
        return self.after if self.kind == "INSERT" else self.before


_EVENT = re.compile(r"^### (INSERT INTO|UPDATE|DELETE FROM) `(.+)`\.`(.+)`$")
_COLUMN = re.compile(r"^###\s+@(\d+)=(.*)$")


def parse_value(text: str) -> Any:
    """One value as ``mariadb-binlog -v`` prints it."""
    text = text.strip()
    if text == "NULL":
        return None
    if text.startswith("'"):
        end = text.rfind("'")
        inner = text[1:end] if end > 0 else text[1:]
        return re.sub(r"\\(.)", r"\1", inner)
    token = text.split(" ", 1)[0]     # "-1 (4294967295)": signed value first
    try:
        return int(token)
    except ValueError:
        return token


def parse_row_events(lines: list[str]) -> list[RowEvent]:
    """Row images of one transaction in ``mariadb-binlog --verbose`` output."""
    events: list[RowEvent] = []
    current: RowEvent | None = None
    image: dict[int, Any] | None = None
    for raw in lines:
        line = raw.rstrip("\n")
        m = _EVENT.match(line)
        if m:
            current = RowEvent(m.group(1).split()[0], f"{m.group(2)}.{m.group(3)}")
            events.append(current)
            image = current.after if current.kind == "INSERT" else current.before
            continue
        if current is None:
            continue
        if line == "### WHERE":
            image = current.before
        elif line == "### SET":
            image = current.after
        else:
            c = _COLUMN.match(line)
            if c and image is not None:
                image[int(c.group(1))] = parse_value(c.group(2))
    return events


def read_failing_transaction(master: Server, log_file: str, position: int,
                             timeout: float = 60.0) -> list[RowEvent]:
    """Decode the event group at ``log_file``:``position`` from the master's binlog."""
    with option_file(master.params) as cnf:
        argv = ["mariadb-binlog", f"--defaults-extra-file={cnf}", "--read-from-remote-server",
                "--base64-output=decode-rows", "--verbose", f"--start-position={position}",
                log_file]
        master.sql_log.record("shell", " ".join(argv[:1] + argv[2:]))
        proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                text=True, errors="replace")
        lines: list[str] = []
        try:
            assert proc.stdout is not None
            for line in proc.stdout:
                lines.append(line)
                if line.startswith("COMMIT") or " Xid = " in line:
                    break
        finally:
            proc.kill()
            _, err = proc.communicate(timeout=timeout)
    events = parse_row_events(lines)
    if not events:
        raise RowFixImpossible(f"could not read the failing event at {log_file}:{position} "
                               f"from the master's binlog ({err.strip()[:200] or 'no rows'})")
    return events


def primary_key(server: Server, table: str) -> list[tuple[str, int]]:
    """[(column, ordinal position)] of the table's primary key."""
    db, name = table.split(".", 1)
    rows = server.query(
        "SELECT s.COLUMN_NAME AS col, c.ORDINAL_POSITION AS pos "
        "FROM information_schema.STATISTICS s JOIN information_schema.COLUMNS c "
        "ON c.TABLE_SCHEMA = s.TABLE_SCHEMA AND c.TABLE_NAME = s.TABLE_NAME "
        "AND c.COLUMN_NAME = s.COLUMN_NAME "
        "WHERE s.TABLE_SCHEMA = %s AND s.TABLE_NAME = %s AND s.INDEX_NAME = 'PRIMARY' "
        "ORDER BY s.SEQ_IN_INDEX", (db, name))
    return [(r["col"], int(r["pos"])) for r in rows]


def key_columns(server: Server, table: str, key: str) -> list[str]:
    db, name = table.split(".", 1)
    # MariaDB names the key 'PRIMARY' or 'table.key' (10.5+) in the message.
    index = key.split(".")[-1]
    rows = server.query(
        "SELECT COLUMN_NAME AS col FROM information_schema.STATISTICS "
        "WHERE TABLE_SCHEMA = %s AND TABLE_NAME = %s AND INDEX_NAME = %s "
        "ORDER BY SEQ_IN_INDEX", (db, name, index))
    return [r["col"] for r in rows]


def _where(columns: list[str]) -> str:
    return " AND ".join(f"{quote_ident(c)} <=> %s" for c in columns)


def fetch_row(server: Server, table: str, columns: list[str],
              values: list[Any]) -> dict[str, Any] | None:
    rows = server.query(f"SELECT * FROM {quote_ident(table)} WHERE {_where(columns)}",
                        tuple(values))
    return rows[0] if rows else None


def _unbinlogged(replica: Server) -> None:
    # The fix must not become a transaction of the replica's own (an errant GTID).
    replica.execute_always(replica.sql("no_binlog_session"))


def fix_duplicate(replica: Server, master: Server, conflict: RowConflict,
                  report: Report) -> str:
    """1062: delete the replica's row holding the key; the master's event re-creates it."""
    assert conflict.key_name is not None and conflict.key_value is not None
    columns = key_columns(replica, conflict.table, conflict.key_name)
    if not columns:
        raise RowFixImpossible(f"key {conflict.key_name} of {conflict.table} not found")
    values = [conflict.key_value] if len(columns) == 1 else conflict.key_value.split("-")
    if len(values) != len(columns):
        raise RowFixImpossible(f"cannot tell the columns of the composite key value "
                               f"{conflict.key_value!r} in {conflict.table}")
    ours = fetch_row(replica, conflict.table, columns, values)
    theirs = fetch_row(master, conflict.table, columns, values)
    report(f"  replica row {_show(ours)}; master's current row {_show(theirs)}")
    _unbinlogged(replica)
    replica.execute(f"DELETE FROM {quote_ident(conflict.table)} WHERE {_where(columns)}",
                    tuple(values))
    return (f"deleted the replica's conflicting row {dict(zip(columns, values, strict=True))} "
            f"in {conflict.table}; the master's event re-creates it")


def fix_missing(replica: Server, master: Server, conflict: RowConflict,
                log_file: str, position: int, report: Report) -> str:
    """1032: copy the master's current version of each missing row, or skip the event."""
    events = read_failing_transaction(master, log_file, position)
    copied: list[str] = []
    unresolved: list[str] = []
    all_equal = True
    keys: dict[str, list[tuple[str, int]]] = {}
    for ev in events:
        if ev.table not in keys:
            keys[ev.table] = primary_key(replica, ev.table)
            if not keys[ev.table]:
                raise RowFixImpossible(f"{ev.table} has no primary key: fix it by re-seeding")
        pk = keys[ev.table]
        cols = [c for c, _ in pk]
        try:
            values = [ev.image[pos] for _, pos in pk]
        except KeyError:
            raise RowFixImpossible(f"the event on {ev.table} lacks its key columns "
                                   "(binlog_row_image=MINIMAL?)") from None
        ours = fetch_row(replica, ev.table, cols, values)
        theirs = fetch_row(master, ev.table, cols, values)
        if ours != theirs:
            all_equal = False
        if ev.kind == "INSERT" or ours is not None:
            continue
        shown = f"{ev.table} {dict(zip(cols, values, strict=True))}"
        if theirs is None:
            unresolved.append(shown)
            continue
        report(f"  {ev.kind.lower()} of {shown}: row missing on the replica; "
               f"master has {_show(theirs)}")
        _unbinlogged(replica)
        names = ", ".join(quote_ident(c) for c in theirs)
        marks = ", ".join(["%s"] * len(theirs))
        replica.execute(f"INSERT INTO {quote_ident(ev.table)} ({names}) VALUES ({marks})",
                        tuple(theirs.values()))
        copied.append(shown)
    if copied:
        return "copied the master's current rows to the replica: " + "; ".join(copied)
    if unresolved and all_equal:
        replica.execute(replica.sql("skip_one_event_group"))
        return ("skipped one event group: its rows (" + "; ".join(unresolved)
                + ") are already the same on both sides (gone on the master too)")
    raise RowFixImpossible(f"error {conflict.errno} on {conflict.table}: no missing row "
                           "could be copied from the master")


def fix_conflict(replica: Server, master: Server, conflict: RowConflict,
                 log_file: str, position: int, report: Report) -> str:
    if conflict.errno == ER_DUP_ENTRY:
        return fix_duplicate(replica, master, conflict, report)
    return fix_missing(replica, master, conflict, log_file, position, report)


def forget_errant(replica: Server, errant: list[str], report: Report) -> str:
    """``RESET MASTER`` on the replica: drops its own binlog and the errant GTIDs."""
    downstream = replica.query(replica.sql("replica_hosts"))
    if downstream:
        raise RowFixImpossible(
            f"errant GTIDs {','.join(errant)} on the replica, but {len(downstream)} server(s) "
            "replicate from it; RESET MASTER would break them: fix by hand")
    report(f"  forgetting errant GTIDs {','.join(errant)} (RESET MASTER on the replica)")
    replica.execute(replica.sql("stop_replica"))
    replica.execute(replica.sql("reset_binlog"))
    return f"forgot errant GTIDs {','.join(errant)}"


def _show(row: dict[str, Any] | None) -> str:
    if row is None:
        return "(none)"
    text = ", ".join(f"{k}={v!r}" for k, v in row.items())
    return "{" + (text if len(text) < 200 else text[:200] + "...") + "}"
