"""How fast this machine is this minute: the CPU time of a fixed loop.

On this VM the same code takes up to 2.5x longer from one minute to the
next (other guests share the host). Benches print this beside their
figures, so two figures are compared only when the machine was alike.
"""

from __future__ import annotations

import time


def reference_ms() -> float:
    """CPU milliseconds of a fixed pure-Python loop (lower is faster)."""
    t0 = time.process_time()
    d: dict[int, str] = {}
    for i in range(200_000):
        d[i & 1023] = str(i)
    return (time.process_time() - t0) * 1000
