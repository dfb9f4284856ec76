"""How long the disk under the database takes to flush, while a bench runs.

An Access-Accept leaves only after its reservation is durable, so every
reply of a paced latency run waits for at least one fsync of MariaDB's redo
log and binlog. On a virtual disk an fsync that takes 0.4 ms when quiet can
take hundreds of milliseconds under writes (seen here: 771 ms), and then it
is the whole p99 whatever the engine does. The probe writes 512 bytes and
fsyncs them every ``every`` seconds on the same filesystem as the datadir,
so the table shows the disk's own figures next to the engine's.

The probe's own writes are small next to the database's (20 a second by
default, against one or two per committed batch).
"""

from __future__ import annotations

import os
import statistics
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType


@dataclass(frozen=True)
class FsyncFigures:
    samples: int
    p50_ms: float
    p99_ms: float
    max_ms: float
    over_10ms: int

    def line(self) -> str:
        if not self.samples:
            return "no fsync measured"
        return (f"fsync of 512 bytes on the database's disk, {self.samples} during the run: "
                f"p50 {self.p50_ms:.2f} ms, p99 {self.p99_ms:.2f} ms, max {self.max_ms:.1f} ms, "
                f"{self.over_10ms} over 10 ms")


def figures(latencies_ms: list[float]) -> FsyncFigures:
    if not latencies_ms:
        return FsyncFigures(0, 0.0, 0.0, 0.0, 0)
    p99 = (statistics.quantiles(latencies_ms, n=100)[98] if len(latencies_ms) > 1
           else latencies_ms[0])
    return FsyncFigures(len(latencies_ms), statistics.median(latencies_ms), p99,
                        max(latencies_ms), sum(1 for x in latencies_ms if x > 10.0))


class FsyncProbe:
    """``with FsyncProbe(dir) as probe: ...`` then ``probe.result``."""

    def __init__(self, directory: Path, every: float = 0.05) -> None:
        self.path = directory / ".vigil-fsync-probe"
        self.every = every
        self.latencies_ms: list[float] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="fsync-probe", daemon=True)
        self.result = figures([])

    def _run(self) -> None:
        fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            block = b"\0" * 512
            while not self._stop.wait(self.every):
                os.write(fd, block)
                t0 = time.perf_counter()
                os.fsync(fd)
                self.latencies_ms.append((time.perf_counter() - t0) * 1000)
        finally:
            os.close(fd)

    def __enter__(self) -> FsyncProbe:
        self._thread.start()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self._stop.set()
        self._thread.join(5)
        self.result = figures(self.latencies_ms)
        self.path.unlink(missing_ok=True)
