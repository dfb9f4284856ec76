"""The NSCA relay's spool as the plugins see it: backlog and last delivery per destination.

Layout and cursor format are the NSCA room's (:mod:`nsca.spool`,
:mod:`nsca.cursor`): sealed segments ``ready/*.jsonl`` (one result a line) and
``cursors/<destination>.json`` = the next record to send, rewritten each
time a batch is delivered, so its mtime is the time of the last delivery.
"""

from __future__ import annotations

import functools
import os
import time
from dataclasses import dataclass
from pathlib import Path

from checks.plugin import Context, PluginError


@dataclass(frozen=True)
class DestinationState:
    name: str
    backlog: int
    last_delivery: float | None   # unix time; None: never delivered
    oldest_pending: float | None  # unix time the oldest waiting segment was sealed

    def stalled_for(self, now: float) -> float:
        """Seconds with results waiting and nothing delivered; 0 when caught up."""
        if self.backlog == 0:
            return 0.0
        since = self.last_delivery
        if since is None or (self.oldest_pending is not None and self.oldest_pending > since):
            since = self.oldest_pending  # it was caught up until these arrived
        return max(0.0, now - since) if since is not None else 0.0


def destinations(ctx: Context) -> tuple[Path, list[str]]:
    from nsca.cli import spool_dir

    try:
        spool = spool_dir(ctx.config())
    except Exception as exc:  # a ConfigError naming the bad [NSCA] value
        raise PluginError(str(exc)) from None
    names = [f"nsca-{h}-{p}" for h, p in ctx.option("NSCA", "Central_Servers", [])]
    names += [f"nsca-ng-{h}-{p}" for h, p in ctx.option("NSCA", "NG_Servers", [])]
    if not names:
        raise PluginError("no central servers configured ([NSCA] Central_Servers / "
                          "NG_Servers): this check runs on the configuration server")
    if not (spool / "ready").is_dir():
        raise PluginError(f"no NSCA spool at {spool} (the relay has not run here)")
    return spool, names


def spool_state(spool: Path, names: list[str]) -> list[DestinationState]:
    from nsca.cursor import cursor_path, read_cursor
    from vigil.statefile import CorruptStateError

    segments = sorted(p for p in (spool / "ready").glob("*.jsonl"))
    counts: dict[str, tuple[int, float]] = {}
    for seg in segments:
        try:
            with open(seg, "rb") as fh:
                counts[seg.name] = (sum(chunk.count(b"\n") for chunk in
                                        iter(functools.partial(fh.read, 1 << 20), b"")),
                                    os.fstat(fh.fileno()).st_mtime)
        except FileNotFoundError:
            continue  # delivered everywhere and removed meanwhile
    out = []
    for name in names:
        try:
            cur = read_cursor(spool, name)
        except CorruptStateError as exc:
            raise PluginError(str(exc)) from None
        backlog, oldest = 0, None
        for seg_name, (n, mtime) in counts.items():
            if seg_name < cur.segment:
                continue
            waiting = n - (cur.offset if seg_name == cur.segment else 0)
            if waiting > 0:
                backlog += waiting
                oldest = mtime if oldest is None else min(oldest, mtime)
        try:
            last = cursor_path(spool, name).stat().st_mtime
        except FileNotFoundError:
            last = None
        out.append(DestinationState(name, backlog, last, oldest))
    return out


def ago(t: float | None, now: float | None = None) -> str:
    if t is None:
        return "never"
    return f"{max(0.0, (now or time.time()) - t):.0f}s ago"
