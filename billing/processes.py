"""Several engine processes on one pair of ports (``[Radius] Processes``).

The parent binds nothing and decides nothing: it forks the engines (each
builds its own database pool, caches and sockets with ``SO_REUSEPORT`` after
the fork), restarts one that dies (at most once a second), and passes SIGHUP
and SIGTERM on. Every engine may answer any request because the database
arbitrates money (docs/billing.md).
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import os
import signal
import time
from collections.abc import Callable

log = logging.getLogger("billing.server")


def _die_with_parent(parent: int) -> None:
    """SIGTERM when the parent dies, however it dies (a SIGKILL from
    supervisor included): no orphan engine keeps the port."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        log.warning("engine process cannot follow its parent's death (no prctl)")
    if os.getppid() != parent:  # the parent died before prctl took effect
        os._exit(1)


class ProcessGroup:
    def __init__(self, n: int, child: Callable[[int], int]) -> None:
        self.n = n
        self.child = child
        self.pids: dict[int, int] = {}  # pid -> index
        self._stop = False

    def _spawn(self, index: int) -> None:
        parent = os.getpid()
        pid = os.fork()
        if pid == 0:
            code = 1
            try:
                signal.signal(signal.SIGTERM, signal.SIG_DFL)
                signal.signal(signal.SIGHUP, signal.SIG_DFL)
                _die_with_parent(parent)
                code = self.child(index)
            except BaseException:
                log.exception("engine process %d failed", index)
            finally:
                os._exit(code)
        self.pids[pid] = index
        log.info("engine process %d started (pid %d)", index, pid)

    def _forward(self, sig: int, *_: object) -> None:
        if sig in (signal.SIGTERM, signal.SIGINT):
            self._stop = True
        for pid in list(self.pids):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM if sig == signal.SIGINT else sig)

    def run(self) -> int:
        for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            signal.signal(sig, self._forward)
        for i in range(self.n):
            self._spawn(i)
        last_restart = 0.0
        while self.pids:
            try:
                pid, status = os.wait()
            except ChildProcessError:
                break
            except InterruptedError:
                continue
            index = self.pids.pop(pid, None)
            if index is None:
                continue
            if self._stop:
                continue
            log.error("engine process %d (pid %d) ended with status %d: restarting", index,
                      pid, os.waitstatus_to_exitcode(status))
            wait = last_restart + 1.0 - time.monotonic()
            if wait > 0:
                time.sleep(wait)  # a crash loop must not eat the machine
            last_restart = time.monotonic()
            self._spawn(index)
        return 0
