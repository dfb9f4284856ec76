"""Identity keys of any length in columns of a fixed width.

A gateway chooses conf-ids and session ids; nothing bounds their length.
Cutting a key to its column once made two different Stops one record (the
second acknowledged as a duplicate and never charged) on SQLite, and an
unstorable record on MariaDB (error 1406). Here a key that fits is kept
whole; a longer one becomes its readable beginning plus the SHA-256 of the
whole key, and always exactly ``width`` characters long. Whole keys are at
most ``width - 1`` characters, so a whole key never equals a digest key, and
two digest keys are equal only if SHA-256 collides.

Leaf module: imports nothing of the project.
"""

from __future__ import annotations

import hashlib

SESSION_KEY_WIDTH = 180  # column 191 (0002), leaving room for xDR suffixes "|a" / "|v"
CALL_KEY_WIDTH = 128  # active_calls.conf_id
_MARK = "~sha256:"
_DIGEST = 64  # hex characters of a SHA-256


def bounded(key: str, width: int) -> str:
    """``key`` itself when shorter than ``width``; otherwise a digest form of
    exactly ``width`` characters that depends on every character of it."""
    if width < len(_MARK) + _DIGEST + 8:
        raise ValueError(f"width {width} leaves no room for a digest")
    if len(key) < width:
        return key
    digest = hashlib.sha256(key.encode("utf-8", "surrogatepass")).hexdigest()
    return key[:width - len(_MARK) - _DIGEST] + _MARK + digest


def session_key(*parts: str) -> str:
    """An accounting record's identity (duplicates are found by it)."""
    return bounded("|".join(parts), SESSION_KEY_WIDTH)


def call_key(conf_id: str) -> str:
    """A call's identity among calls in progress."""
    return bounded(conf_id, CALL_KEY_WIDTH)
