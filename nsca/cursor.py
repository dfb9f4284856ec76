"""Per-destination cursors: how far into the spool each destination has been served.

``cursors/<name>.json`` = ``{"segment": name, "offset": n}``: every record
before record ``n`` of that segment (and every earlier segment) is
delivered. A file that does not parse is reported, never guessed at.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

from vigil.statefile import CorruptStateError, write_bytes_atomic


@dataclass(frozen=True)
class Cursor:
    segment: str = ""
    offset: int = 0


def cursor_path(spool: Path, name: str) -> Path:
    return Path(spool) / "cursors" / f"{name}.json"


def read_cursor(spool: Path, name: str) -> Cursor:
    path = cursor_path(spool, name)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return Cursor()
    try:
        d = json.loads(data)
        return Cursor(str(d["segment"]), int(d["offset"]))
    except (ValueError, KeyError, TypeError) as exc:
        raise CorruptStateError(
            f"{path}: not a cursor ({exc}); remove it to send the whole spool to this "
            "server again") from exc


def write_cursor(spool: Path, name: str, cur: Cursor, *, fsync: bool) -> None:
    path = cursor_path(spool, name)
    data = json.dumps({"segment": cur.segment, "offset": cur.offset}).encode() + b"\n"
    if fsync:
        write_bytes_atomic(path, data)
        return
    # Rename without fsync: survives a crash of this process (the page cache
    # stays), and the relay fsyncs the folder once a second for power loss.
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "wb") as fh:
        fh.write(data)
    os.replace(tmp, path)
