"""Refusals and drops logged as bounded, rate-limited summaries.

Anyone who can reach the port can make the server refuse things; logging
each refusal would let them fill the disk. Counts are kept per source and
cause, and one line per source is written per interval ("dropped 4,000 from
10.1.2.3 in 10 s: BadCRC 3,990, forged name 10; e.g. ..."). The number of
sources tracked in one interval is capped; the rest are summed as "others".
Text from the wire is escaped before it reaches a log line.
"""

from __future__ import annotations

import collections
import logging
import threading
import time
from collections.abc import Callable

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


class DropLog:
    """Thread-safe counter of drops that logs one summary per source per interval."""

    def __init__(self, logger: logging.Logger, *, interval: float = 10.0,
                 max_sources: int = 100,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.log = logger
        self.interval = interval
        self.max_sources = max_sources
        self.clock = clock
        self.totals: collections.Counter[str] = collections.Counter()
        self._counts: dict[str, collections.Counter[str]] = {}
        self._example: dict[str, str] = {}
        self._since = clock()
        self._lock = threading.Lock()

    def add(self, source: str, cause: str, example: str = "", n: int = 1) -> None:
        with self._lock:
            self.totals[cause] += n
            if source not in self._counts and len(self._counts) >= self.max_sources:
                source = OTHERS
            self._counts.setdefault(source, collections.Counter())[cause] += n
            if example and source not in self._example:
                self._example[source] = printable(example)
            due = self.clock() - self._since >= self.interval
        if due:
            self.flush()

    def tick(self) -> None:
        """Flush if the interval is over (for a loop that wakes now and then)."""
        with self._lock:
            due = self._counts and self.clock() - self._since >= self.interval
        if due:
            self.flush()

    def flush(self) -> int:
        """Write the summaries now; the number of lines written."""
        with self._lock:
            counts, examples = self._counts, self._example
            span = self.clock() - self._since
            self._counts, self._example, self._since = {}, {}, self.clock()
        for source, causes in counts.items():
            parts = ", ".join(f"{c} {n:,}" for c, n in causes.most_common())
            example = f"; e.g. {examples[source]}" if source in examples else ""
            self.log.warning("dropped %s from %s in %.0f s: %s%s", f"{sum(causes.values()):,}",
                             source, span, parts, example)
        return len(counts)
