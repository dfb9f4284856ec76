"""The secondary site's mode, persisted atomically in ``<State_Dir>/site-mode.json``.

*standby*: the stand-by database follows the primary; this site's RADIUS does
not answer, so gateways keep using the primary. *standalone*: this site's
RADIUS authorises and charges through the stand-alone store.

The file is the single source of truth: the watchdog and the admin commands
write it (temp file, fsync, rename, under a lock); the RADIUS engine reads it
on every request (a stat, re-read only when it changed). A file that does not
parse is reported, never trusted: the reader treats it as stand-by, the one
mode that cannot charge money twice.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

from vigil import statefile

log = logging.getLogger(__name__)

STANDBY = "standby"
STANDALONE = "standalone"
MODES = (STANDBY, STANDALONE)
FILE_NAME = "site-mode.json"


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC).replace(tzinfo=None, microsecond=0)


@dataclass(frozen=True)
class SiteMode:
    mode: str = STANDBY
    since: str = ""  # ISO time, UTC
    reason: str = "initial"
    by: str = ""  # watchdog | admin | failback
    last_failback: str = ""  # ISO time of the last completed failback

    @property
    def standalone(self) -> bool:
        return self.mode == STANDALONE

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def mode_path(state_dir: Path) -> Path:
    return Path(state_dir) / FILE_NAME


def read(path: Path) -> SiteMode:
    """The persisted mode; stand-by when there is no file. Corrupt raises."""
    data = statefile.read_json(path)
    if data is None:
        return SiteMode()
    if not isinstance(data, dict) or data.get("mode") not in MODES:
        raise statefile.CorruptStateError(f"{path}: not a site mode ({str(data)[:80]!r})")
    known = {k: str(v) for k, v in data.items() if k in SiteMode.__dataclass_fields__}
    return SiteMode(**known)


def write(path: Path, mode: str, reason: str, by: str,
          now: dt.datetime | None = None) -> SiteMode:
    """Persist a switch (keeps the last failback time unless ``by`` is failback)."""
    if mode not in MODES:
        raise ValueError(f"unknown site mode {mode!r}")
    try:
        old = read(path)
    except statefile.CorruptStateError as exc:
        log.error("site mode file corrupt, overwritten: %s", exc)
        old = SiteMode()
    when = (now or utcnow()).isoformat()
    new = replace(old, mode=mode, since=when, reason=reason[:500], by=by)
    if by == "failback" and mode == STANDBY:
        new = replace(new, last_failback=when)
    statefile.write_json(path, new.to_json())
    log.info("site mode now %s (by %s): %s", mode, by, reason)
    return new


class ModeWatcher:
    """What the RADIUS engine asks on every request: re-reads the file only
    when its mtime or size changed, so a switch is seen at the next packet."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._stamp: tuple[int, int] | None = None
        self._mode = SiteMode()

    def current(self) -> SiteMode:
        try:
            st = os.stat(self.path)
            stamp = (st.st_mtime_ns, st.st_size)
        except FileNotFoundError:
            stamp = (0, 0)
        if stamp != self._stamp:
            try:
                self._mode = read(self.path)
            except (statefile.CorruptStateError, OSError) as exc:
                log.error("site mode unreadable, acting as stand-by: %s", exc)
                self._mode = SiteMode(reason=f"unreadable mode file: {exc}")
            self._stamp = stamp
        return self._mode


class ModeRefused(Exception):
    """An operation stand-alone (or stand-by) mode forbids; the message says what to do."""


def refuse_changes(state_dir: Path, what: str) -> None:
    """Raise :class:`ModeRefused`, naming the mode and what to do: called on a
    secondary site, where only calls may change data (the source's split-brain
    rule), whether it is stand-alone or stand-by (no file means stand-by)."""
    path = mode_path(state_dir)
    try:
        m = read(path)
    except statefile.CorruptStateError as exc:
        raise ModeRefused(f"{what} refused: the site mode file is corrupt ({exc}); "
                          "fix it with `vigil site status`") from None
    if m.standalone:
        raise ModeRefused(
            f"{what} refused: this site is in STAND-ALONE mode since {m.since} ({m.reason}). "
            "Only calls (balances and xDRs) may change data here, so that nothing conflicts "
            "when the changes are merged back. Make this change on the primary site once "
            "it is back, after `vigil site failback`.")
    raise ModeRefused(
        f"{what} refused: this is the secondary site in STAND-BY mode; its database is a "
        "replica of the primary. Make this change on the primary site.")
