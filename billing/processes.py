"""Several engine processes on one pair of ports (``[Radius] Processes``).

The parent binds nothing and decides nothing: it forks the engines (each
builds its own database pool, caches and sockets with ``SO_REUSEPORT`` after
the fork), restarts one that dies (at most once a second), kills one whose
packet loop stopped moving (``[Radius] Hung_Process_sec``) so that it is
restarted too, and passes SIGHUP and SIGTERM on. Every engine may answer any
request because the database arbitrates money (docs/billing.md).

Why the parent watches the loops: radcheck restarts the whole program after
failed self-tests, but the kernel hashes each client socket to one process,
so a hung process is only seen by the probes that happen to land on it, and
the gateways hashed to it get no answer meanwhile.
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import mmap
import os
import select
import signal
import time
from collections.abc import Callable

log = logging.getLogger("billing.server")

CHECK_INTERVAL = 1.0  # seconds between two looks at the loops' stamps
# A process that has not reached its packet loop this long after its fork is
# hung too (building the server reads nodes and tariffs, each statement bounded
# by [Master] Query_Timeout_sec): more generous than a loop that stopped.
STARTUP_SEC = 60.0


def cores() -> int:
    """The CPUs this program may run on (taskset and cpusets included)."""
    try:
        return len(os.sched_getaffinity(0)) or 1
    except (AttributeError, OSError):
        return os.cpu_count() or 1


class LoopStamps:
    """One ``time.monotonic()`` per engine process, written by its packet loop,
    read by the parent.

    An anonymous shared mapping made before the fork: each child writes its
    own slot, a plain 8-byte store (no lock, no system call), and the parent
    reads them all. ``CLOCK_MONOTONIC`` is one clock for every process on the
    machine, so the parent can compare the stamps with its own clock. 0.0 means
    "not in its loop yet".
    """

    def __init__(self, n: int) -> None:
        self._mem = mmap.mmap(-1, 8 * max(n, 1))  # MAP_SHARED | MAP_ANONYMOUS
        self._slots = (ctypes.c_double * max(n, 1)).from_buffer(self._mem)

    def stamp(self, index: int, now: float) -> None:
        self._slots[index] = now

    def get(self, index: int) -> float:
        return float(self._slots[index])

    def clear(self, index: int) -> None:
        self._slots[index] = 0.0

    def writer(self, index: int) -> Callable[[float], None]:
        """What the engine process ``index`` calls once per loop iteration."""
        slots = self._slots

        def stamp(now: float) -> None:
            slots[index] = now

        return stamp


def cpu_plan(setting: str | tuple[int, ...], n: int, allowed: set[int] | None = None
             ) -> list[int | None]:
    """The CPU of each of ``n`` processes (None: not pinned) for ``[Radius]
    CPU_Affinity``: ``auto`` round robin over the CPUs this program may run
    on, a tuple round robin over those of its CPUs that are allowed (a CPU
    outside the cpuset cannot be had), ``no`` none."""
    if setting == "no" or n <= 1:
        return [None] * n
    if allowed is None:
        try:
            allowed = os.sched_getaffinity(0)
        except (AttributeError, OSError):
            return [None] * n
    usable = sorted(allowed) if setting == "auto" else [c for c in setting if c in allowed]
    if not usable:
        return [None] * n
    return [usable[k % len(usable)] for k in range(n)]


def pin(index: int, cpu: int | None) -> None:
    """This process, and every thread it starts from now on, on ``cpu``."""
    if cpu is None:
        return
    try:
        os.sched_setaffinity(0, {cpu})
    except (AttributeError, OSError) as exc:
        log.warning("engine process %d not pinned to CPU %d: %s", index, cpu, exc)
        return
    log.info("engine process %d pinned to CPU %d", index, cpu)


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
    """``n`` engine processes; ``child(index)`` runs one and returns its exit code.

    ``cpus[index]`` (see :func:`cpu_plan`) pins process ``index`` at its
    fork, again at each restart.

    ``hung_after`` seconds without a stamp from a process's loop (0: never)
    get it killed and restarted. The child stamps through ``stamps.writer(index)``.
    """

    def __init__(self, n: int, child: Callable[[int], int], hung_after: float = 0.0,
                 clock: Callable[[], float] = time.monotonic,
                 cpus: list[int | None] | None = None) -> None:
        self.n = n
        self.cpus = cpus or [None] * n  # one per index (cpu_plan)
        self.child = child
        self.hung_after = hung_after
        self.clock = clock
        self.stamps = LoopStamps(n)
        self.pids: dict[int, int] = {}  # pid -> index
        self._forked_at: dict[int, float] = {}  # pid -> clock() at fork
        self._killed: set[int] = set()  # hung pids already sent SIGKILL
        self._stop = False
        self._wake_r, self._wake_w = -1, -1

    def _spawn(self, index: int) -> None:
        parent = os.getpid()
        self.stamps.clear(index)  # the new process has not reached its loop yet
        forked_at = self.clock()
        pid = os.fork()
        if pid == 0:
            code = 1
            try:
                signal.set_wakeup_fd(-1)  # the parent's pipe is the parent's
                for fd in (self._wake_r, self._wake_w):
                    if fd >= 0:
                        os.close(fd)
                for sig in (signal.SIGTERM, signal.SIGHUP, signal.SIGCHLD):
                    signal.signal(sig, signal.SIG_DFL)
                _die_with_parent(parent)
                # before the child starts any thread: they all inherit it
                pin(index, self.cpus[index])
                code = self.child(index)
            except BaseException:
                log.exception("engine process %d failed", index)
            finally:
                os._exit(code)
        self.pids[pid] = index
        self._forked_at[pid] = forked_at
        log.info("engine process %d started (pid %d)", index, pid)

    def _forward(self, sig: int, *_: object) -> None:
        if sig in (signal.SIGTERM, signal.SIGINT):
            self._stop = True
        for pid in list(self.pids):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM if sig == signal.SIGINT else sig)

    def check_loops(self) -> list[int]:
        """Kill every process whose loop has not moved for ``hung_after``; their pids.

        Money stays safe when a process dies in the middle of its work: an
        Access-Accept or Accounting-Response leaves only after its transaction
        committed, and a transaction the dead process left open is rolled back
        by the database when its connection drops (its row locks with it). A
        gateway that got no answer retransmits, to whichever process the
        kernel picks: a Stop already committed is a duplicate by its session
        key (processed_accounting), an authorization gives the call's earlier
        reservation back before granting it again. Calls in progress live in
        the database, not in the process. Killing a hung process loses nothing
        acknowledged and charges nothing twice; leaving it up keeps its
        gateways unanswered and its locks held.
        """
        if self.hung_after <= 0 or self._stop:
            return []
        now = self.clock()
        killed = []
        for pid, index in list(self.pids.items()):
            if pid in self._killed:
                continue
            stamp = self.stamps.get(index)
            if stamp > 0.0:
                stuck, limit, where = now - stamp, self.hung_after, "its packet loop has not moved"
            else:
                stuck = now - self._forked_at.get(pid, now)
                limit = max(self.hung_after, STARTUP_SEC)
                where = "it has not reached its packet loop"
            if stuck < limit:
                continue
            log.error("engine process %d (pid %d) hung: %s for %.0f s; killing it (SIGKILL) "
                      "to restart it", index, pid, where, stuck)
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
            self._killed.add(pid)
            killed.append(pid)
        return killed

    def _reap(self, last_restart: float) -> float:
        """Collect every ended process and restart it; the time of the last restart."""
        while self.pids:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                self.pids.clear()
                break
            except InterruptedError:
                continue
            if pid == 0:
                break
            index = self.pids.pop(pid, None)
            self._forked_at.pop(pid, None)
            self._killed.discard(pid)
            if index is None or self._stop:
                continue
            log.error("engine process %d (pid %d) ended with status %d: restarting", index,
                      pid, os.waitstatus_to_exitcode(status))
            wait = last_restart + 1.0 - time.monotonic()
            if wait > 0:
                time.sleep(wait)  # a crash loop must not eat the machine
            last_restart = time.monotonic()
            self._spawn(index)
        return last_restart

    def _sleep(self, seconds: float) -> None:
        """Wait up to ``seconds``; a signal (a child ended, SIGTERM) wakes us at once."""
        with contextlib.suppress(InterruptedError):
            select.select([self._wake_r], [], [], seconds)
        with contextlib.suppress(BlockingIOError):
            while os.read(self._wake_r, 512):
                pass

    def run(self) -> int:
        self._wake_r, self._wake_w = os.pipe()
        for fd in (self._wake_r, self._wake_w):
            os.set_blocking(fd, False)
        signal.set_wakeup_fd(self._wake_w, warn_on_full_buffer=False)
        signal.signal(signal.SIGCHLD, lambda *_: None)  # a handler, so SIGCHLD wakes _sleep
        for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            signal.signal(sig, self._forward)
        try:
            for i in range(self.n):
                self._spawn(i)
            last_restart = 0.0
            while self.pids:
                last_restart = self._reap(last_restart)
                if not self.pids:
                    break
                self.check_loops()
                self._sleep(CHECK_INTERVAL)
        finally:
            signal.set_wakeup_fd(-1)
            os.close(self._wake_r)
            os.close(self._wake_w)
        return 0
