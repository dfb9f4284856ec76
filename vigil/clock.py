"""The one wall clock of the project: naive UTC.

The billing database stores DATETIME without a zone (MariaDB and SQLite alike),
so every timestamp the code writes or compares is UTC with the zone stripped.
A leaf module: it imports nothing of the project.
"""

from __future__ import annotations

import datetime as dt


def utcnow() -> dt.datetime:
    """Now, in UTC, without tzinfo (what a DATETIME column holds)."""
    return dt.datetime.now(dt.UTC).replace(tzinfo=None)
