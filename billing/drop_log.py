"""Drops and refusals told as summaries: one line per source per interval.

Anyone can send datagrams, so a line per drop lets anyone fill the disk
(100,000 junk datagrams once wrote 309,000 lines). Instead each drop is
counted here by source and cause: the first drop of an interval from a
source is told at once, and :meth:`DropLog.flush` writes, once per
interval, one line per source that sent more::

    dropped 18,233 packets from 10.1.2.3 in 10 s: 17,900 malformed, 333 unknown NAS
    (first: attribute 4 (length 6) runs past the end of the packet at byte 20)

Spoofed sources could make the sources themselves many: per interval at
most ``max_sources`` first drops are told at once and ``max_sources``
summaries written, the rest folded into one line; beyond ``max_tracked``
sources drops are only counted, so the table itself stays bounded.
A clock is passed in so tests can drive intervals without sleeping.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field

WORDS = {"malformed": "malformed", "unknown_nas": "unknown NAS",
         "bad_authenticator": "bad authenticator", "internal_error": "internal error"}


@dataclass
class _Source:
    total: int = 0
    by_cause: dict[str, int] = field(default_factory=dict)
    first: str = ""
    told: bool = False  # its first drop was logged at once


class DropLog:
    def __init__(self, logger: logging.Logger, interval: float = 10.0, max_sources: int = 20,
                 clock: Callable[[], float] = time.monotonic, max_tracked: int = 10_000) -> None:
        self.log = logger
        self.interval = interval
        self.max_sources = max_sources
        self.max_tracked = max_tracked
        self.clock = clock
        self._sources: dict[str, _Source] = {}
        # spoofed sources beyond max_tracked: counted, not remembered one by one
        self._untracked = 0
        self._since = clock()

    def note(self, source: str, cause: str, detail: str = "") -> None:
        if not self._sources:
            self._since = self.clock()  # an interval starts with its first drop
        s = self._sources.get(source)
        if s is None and len(self._sources) >= self.max_tracked:
            self._untracked += 1
            return
        if s is None:
            s = self._sources[source] = _Source()
            if len(self._sources) <= self.max_sources:
                s.told = True
                # The first of an interval is told at once (a wrong secret
                # shows while the admin is looking); the rest are summed.
                self.log.warning("dropped a packet from %s: %s: %s (more are summed every "
                                 "%.0f s)", source, WORDS.get(cause, cause), detail[:200],
                                 self.interval)
        s.total += 1
        s.by_cause[cause] = s.by_cause.get(cause, 0) + 1
        if not s.first and detail:
            s.first = detail[:200]

    def due(self) -> bool:
        return bool(self._sources) and self.clock() - self._since >= self.interval

    def flush(self) -> int:
        """Write the summaries of the interval that ends now; lines written."""
        now = self.clock()
        seconds = max(now - self._since, 0.0)
        self._since = now
        if not self._sources:
            return 0
        sources, self._sources = self._sources, {}
        untracked, self._untracked = self._untracked, 0
        # A source whose one drop was told at once needs no summary.
        ranked = sorted(((k, v) for k, v in sources.items() if v.total > 1 or not v.told),
                        key=lambda kv: -kv[1].total)
        for src, s in ranked[:self.max_sources]:
            causes = ", ".join(f"{n:,} {WORDS.get(c, c)}" for c, n in
                               sorted(s.by_cause.items(), key=lambda kv: -kv[1]))
            self.log.warning("dropped %s packet%s from %s in %.0f s: %s%s", f"{s.total:,}",
                             "" if s.total == 1 else "s", src, seconds, causes,
                             f" (first: {s.first})" if s.first else "")
        rest = ranked[self.max_sources:]
        if rest or untracked:
            self.log.warning("dropped %s packets from %s other sources in %.0f s",
                             f"{sum(s.total for _, s in rest) + untracked:,}",
                             f"{len(rest)}" if not untracked else f"more than {len(rest)}",
                             seconds)
        return min(len(ranked), self.max_sources) + (1 if rest or untracked else 0)
