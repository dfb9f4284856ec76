"""Drops and refusals told as bounded, rate-limited summaries.

Anyone who can reach a port can make a server refuse things, so a log line
per refusal lets anyone fill the disk (100,000 junk RADIUS datagrams once
wrote 309,000 lines). Instead each drop is counted here by source and cause,
and once per interval one line per source is written::

    dropped 18,233 packets from 10.1.2.3 in 10 s: 17,900 malformed, 333 unknown NAS (first: ...)
    dropped 4,000 from 10.1.2.3 in 10 s: BadCRC 3,990, forged name 10; e.g. web1;db1\\x0a

The invariants, whichever room uses it:
- at most ``max_sources`` summary lines per interval, plus one line folding
  the other sources in (spoofed sources can be many);
- at most ``max_tracked`` sources remembered one by one; drops from more are
  counted in one "others" tally, so the table itself stays bounded;
- text from the wire is escaped and cut (:func:`printable`) before it is kept;
- a drop after a quiet spell shows at once: told as it happens (a wrong
  secret shows while the admin is looking), or, where the style does not
  tell single drops, as a summary written right away because the interval
  since the last one is long over.

The rooms keep their own wording (:class:`Style`): operators and runbooks grep
those lines. A clock is passed in so tests drive intervals without sleeping.
This module imports nothing of the project.
"""

from __future__ import annotations

import collections
import logging
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

OTHERS = "others"


def printable(text: str, limit: int = 80) -> str:
    """``text`` with control characters and stray bytes escaped, cut to ``limit``."""
    out = []
    for ch in text[:limit]:
        if ch.isprintable() and ch != "\\":
            out.append(ch)
        elif ch == "\\":
            out.append("\\\\")
        else:
            code = ord(ch)
            if 0xDC80 <= code <= 0xDCFF:  # a byte that was not UTF-8
                code -= 0xDC00
            out.append(f"\\x{code:02x}" if code <= 0xFF else f"\\u{code:04x}")
    return "".join(out) + ("..." if len(text) > limit else "")


@dataclass(frozen=True)
class Style:
    """How one room's drop lines read, and whether a single drop is told at once."""

    noun: str = ""            # "packet": "dropped 3 packets from"; "": "dropped 3 from"
    count_first: bool = False  # "3 malformed" (True) or "malformed 3" (False)
    example: str = "; e.g. {}"  # how a source's first detail follows its counts
    example_limit: int = 80
    # Tell a source's first drop of an interval at once; the interval then
    # starts with that drop. Without it the interval runs from the last summary.
    tell_first: bool = False
    # The fold line: "dropped N from others in 10 s: <causes>" (False), or
    # "dropped N packets from M other sources in 10 s" (True).
    fold_counts_sources: bool = False
    causes: Mapping[str, str] = field(default_factory=dict)  # cause key -> words in the line

    def amount(self, n: int) -> str:
        if not self.noun:
            return f"{n:,}"
        return f"{n:,} {self.noun}{'' if n == 1 else 's'}"

    def cause(self, key: str, n: int) -> str:
        word = self.causes.get(key, key)
        return f"{n:,} {word}" if self.count_first else f"{word} {n:,}"


# billing.server: datagrams refused before the engine sees them (the cause keys
# are billing.radius_decode's, also the dropped_<cause> counters' names)
RADIUS_STYLE = Style(
    noun="packet", count_first=True, example=" (first: {})", example_limit=200,
    tell_first=True, fold_counts_sources=True,
    causes={"malformed": "malformed", "unknown_nas": "unknown NAS",
            "bad_authenticator": "bad authenticator", "internal_error": "internal error"})

# nsca.server and nsca.relay: connections and results refused, causes in words already
NSCA_STYLE = Style()


class _Tally:
    __slots__ = ("total", "causes", "first", "told")

    def __init__(self) -> None:
        self.total = 0
        self.causes: collections.Counter[str] = collections.Counter()
        self.first = ""
        self.told = False  # its first drop was logged at once

    def add(self, cause: str, detail: str) -> None:
        self.total += 1
        self.causes[cause] += 1
        if detail and not self.first:
            self.first = detail


class DropLog:
    """Counts drops per source and cause and writes one summary per source per interval.

    Thread-safe: the lines are written outside the lock.
    """

    def __init__(self, logger: logging.Logger, *, interval: float = 10.0,
                 max_sources: int = 20, max_tracked: int = 10_000,
                 style: Style = RADIUS_STYLE,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.log = logger
        self.interval = interval
        self.max_sources = max_sources
        self.max_tracked = max_tracked
        self.style = style
        self.clock = clock
        self.totals: collections.Counter[str] = collections.Counter()  # since start, per cause
        self._sources: dict[str, _Tally] = {}
        self._others = _Tally()  # sources beyond max_tracked: counted, not remembered
        self._since = clock()
        self._lock = threading.Lock()

    def note(self, source: str, cause: str, detail: str = "") -> None:
        """One drop from ``source``; ``detail`` (wire text allowed) kept for the first."""
        style = self.style
        tell = False
        with self._lock:
            self.totals[cause] += 1
            if style.tell_first and not self._sources and not self._others.total:
                self._since = self.clock()  # an interval starts with its first drop
            tally = self._sources.get(source)
            if tally is None and len(self._sources) >= self.max_tracked:
                tally = self._others
            elif tally is None:
                tally = self._sources[source] = _Tally()
                # The first of an interval is told at once, for the first
                # max_sources sources; the rest wait for the summary.
                tell = tally.told = style.tell_first and len(self._sources) <= self.max_sources
            # only the first detail is kept: escape that one, not every one
            tally.add(cause, printable(detail, style.example_limit)
                      if detail and not tally.first else "")
            due = self.clock() - self._since >= self.interval
        if tell:
            self.log.warning("dropped a %s from %s: %s: %s (more are summed every %.0f s)",
                             style.noun or "request", source, style.causes.get(cause, cause),
                             tally.first, self.interval)
        if due:
            self.flush()

    def due(self) -> bool:
        """Drops are waiting and their interval is over."""
        with self._lock:
            return self._waiting() and self.clock() - self._since >= self.interval

    def tick(self) -> None:
        """Write the summaries if their interval is over (for a loop that wakes now and then)."""
        if self.due():
            self.flush()

    def flush(self) -> int:
        """Write the summaries of the interval that ends now; the number of lines written."""
        with self._lock:
            now = self.clock()
            seconds = max(now - self._since, 0.0)
            self._since = now
            if not self._waiting():
                return 0
            sources, self._sources = self._sources, {}
            others, self._others = self._others, _Tally()
        # A source whose one drop was told at once needs no summary.
        ranked = sorted(((src, t) for src, t in sources.items() if t.total > 1 or not t.told),
                        key=lambda kv: -kv[1].total)
        for src, t in ranked[:self.max_sources]:
            self._summary(src, t, seconds)
        written = min(len(ranked), self.max_sources)
        rest = ranked[self.max_sources:]
        if not rest and not others.total:
            return written
        untracked = others.total > 0  # then how many sources sent them is unknown
        for _, t in rest:
            others.total += t.total
            others.causes.update(t.causes)
            others.first = others.first or t.first
        if self.style.fold_counts_sources:
            self.log.warning("dropped %s from %s other sources in %.0f s",
                             self.style.amount(others.total),
                             f"more than {len(rest)}" if untracked else f"{len(rest)}", seconds)
        else:
            self._summary(OTHERS, others, seconds)
        return written + 1

    def _waiting(self) -> bool:
        return bool(self._sources) or self._others.total > 0

    def _summary(self, source: str, t: _Tally, seconds: float) -> None:
        causes = ", ".join(self.style.cause(c, n) for c, n in t.causes.most_common())
        example = self.style.example.format(t.first) if t.first else ""
        self.log.warning("dropped %s from %s in %.0f s: %s%s", self.style.amount(t.total),
                         source, seconds, causes, example)
