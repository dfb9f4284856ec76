"""How fast this machine is this minute: the CPU time of a fixed loop.

On this VM the same code takes up to 2.5x longer from one minute to the
next (other guests share the host). Benches print this beside their
figures, so two figures are compared only when the machine was alike.
"""

from __future__ import annotations

import platform
import sys
import time


def reference_ms() -> float:
    """CPU milliseconds of a fixed pure-Python loop (lower is faster)."""
    t0 = time.process_time()
    d: dict[int, str] = {}
    for i in range(200_000):
        d[i & 1023] = str(i)
    return (time.process_time() - t0) * 1000


def interpreter() -> str:
    """Which Python runs the engine and the sender, and how it was built.

    Why: the same code took 26% more CPU per authorization on a pyenv build
    of 3.11 (libpython a shared library, no profile-guided optimisation)
    than on Debian's own (bench/bench_engine_cpu.py), and the reference
    loop showed it too: figures are compared on one interpreter only."""
    try:
        with open("/proc/self/maps") as maps:
            shared = "libpython" in maps.read()
    except OSError:
        shared = None
    linked = {True: "libpython a shared library", False: "libpython linked in",
              None: "libpython linkage unknown"}[shared]
    return f"Python {platform.python_version()} at {sys.executable} ({linked})"
