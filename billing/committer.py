"""The committer: the threads that write accountings and reservations.

The packet loop hands it work and goes on answering; the committer takes
everything that arrived while it was busy, commits it in one transaction
(group commit), and only then lets the replies go: an Access-Accept leaves
after its reservation is durable, an Accounting-Response after its record.
It owns its queue and knows nothing of the server: it is given what to do
with a batch (``commit``) and what to do when that fails (``failed``).

With ``threads`` > 1 (``[Radius] Commit_Threads``) the batches are
pipelined: the next one runs its statements while this one's COMMIT is
flushed, in the order ``billing.commit_turn`` explains. Only when there is
work enough: while a batch is in flight, the next thread waits for it to end
unless ``pipeline_from`` requests wait (or it has taken ``pipeline_wait``).
At a low rate two threads otherwise each committed batches of one or two
side by side, every batch paying its whole fixed cost: two processes paced
at 1,000/s used 0.55-0.60 s of CPU per 1,000 against 0.64-0.69, p99 median
9.8 ms against 11.4 (six runs each, alternating, one sitting; docs/billing.md).

Work that waited longer than ``max_age`` (the gateway has given up and
failed over) is dropped unanswered, and at most ``max_backlog`` items wait:
a hung database cannot make the engine hoard requests.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from typing import Generic, TypeVar

from billing import commit_turn

log = logging.getLogger(__name__)

T = TypeVar("T")

# The longest a thread waits for the batch in flight before it sends a small
# one beside it: a batch stuck on another engine's row lock (up to the query
# timeout) must not hold back the requests behind it for longer than this.
PIPELINE_WAIT = 0.01


class Committer(Generic[T]):
    def __init__(self, commit: Callable[[list[T]], None], failed: Callable[[list[T]], None],
                 max_batch: int = 64, max_backlog: int = 5000, max_age: float = 10.0,
                 clock: Callable[[], float] = time.monotonic, threads: int = 1,
                 hold: Callable[[], AbstractContextManager[None]] | None = None,
                 idle: Callable[[], None] | None = None,
                 pipeline_from: int | None = None,
                 pipeline_wait: float = PIPELINE_WAIT) -> None:
        n = max(1, threads)
        self._threads = [threading.Thread(target=self.run, daemon=True,
                                          name="committer" if n == 1 else f"committer-{i + 1}")
                         for i in range(n)]
        self._turn = threading.Lock()
        self._commit = commit
        self._failed = failed
        # Each thread runs inside ``hold()`` (the store keeps its connection
        # between batches) and calls ``idle()`` after half a second with no
        # work (the store gives it back).
        self._hold = hold or nullcontext
        self._idle = idle
        self.max_batch = max(1, max_batch)
        self.max_backlog = max_backlog
        self.max_age = max_age
        self.clock = clock
        self._queue: deque[tuple[float, T]] = deque()
        # An RLock, as a bare Condition() has: with a plain Lock, every
        # notify (one per request in submit) probes ownership by trying to
        # take the lock.
        lock = threading.RLock()
        self._cond = threading.Condition(lock)
        # Waited on by a thread holding the turn while a batch is in flight
        # and the queue is short (see the module's docstring).
        self._deep = threading.Condition(lock)
        self._in_flight = 0
        self.pipeline_from = (max(1, self.max_batch // 8) if pipeline_from is None
                              else max(1, pipeline_from))
        self.pipeline_wait = pipeline_wait
        self._stopping = False
        self.dropped = 0

    def submit(self, item: T) -> bool:
        """False when the backlog is full (the item is not taken)."""
        with self._cond:
            if len(self._queue) >= self.max_backlog:
                self.dropped += 1
                return False
            self._queue.append((self.clock(), item))
            self._cond.notify()
            if len(self._queue) >= self.pipeline_from:
                self._deep.notify()
            return True

    def backlog(self) -> int:
        with self._cond:
            return len(self._queue)

    def take(self) -> tuple[list[T], list[T]]:
        """The next batch, and what aged past ``max_age`` (dropped)."""
        batch: list[T] = []
        stale: list[T] = []
        oldest = self.clock() - self.max_age
        with self._cond:
            while self._queue and len(batch) < self.max_batch:
                born, item = self._queue.popleft()
                (stale if born < oldest else batch).append(item)
            if batch:
                self._in_flight += 1
        return batch, stale

    def _wait_for_work_enough(self) -> None:
        """With the turn held: while another batch is in flight and fewer
        than ``pipeline_from`` requests wait, wait for it to end (at most
        ``pipeline_wait``), so that they join the next batch instead of
        making one of their own beside it."""
        deadline = self.clock() + self.pipeline_wait
        with self._cond:
            while self._in_flight and len(self._queue) < self.pipeline_from \
                    and not self._stopping:
                left = deadline - self.clock()
                if left <= 0 or not self._deep.wait(left):
                    return

    def _landed(self) -> None:
        with self._cond:
            self._in_flight -= 1
            self._deep.notify()

    def run_once(self) -> bool:
        """Commit one batch; False when there was nothing to do."""
        with commit_turn.turn(self._turn):
            self._wait_for_work_enough()
            batch, stale = self.take()
            if stale:
                with self._cond:
                    self.dropped += len(stale)
                log.warning("%d requests waited more than %.0f s for the database: dropped "
                            "unanswered (the gateways have failed over)", len(stale),
                            self.max_age)
                self._guard(self._failed, stale)
            if not batch:
                return bool(stale)
            try:
                self._commit(batch)
            except Exception:
                # A bug here must not silently stop every future commit.
                log.exception("committer: unexpected error; this batch is not acknowledged "
                              "and will be retransmitted by the gateways")
                self._guard(self._failed, batch)
            finally:
                self._landed()
        return True

    @staticmethod
    def _guard(fn: Callable[[list[T]], None], items: list[T]) -> None:
        try:
            fn(items)
        except Exception:
            log.exception("committer: failure handler raised")

    def run(self) -> None:
        with self._hold():
            while True:
                idle = False
                with self._cond:
                    if not self._queue and not self._stopping:
                        # idle: half a second without a notify (another
                        # committer thread may take what woke this one)
                        idle = not self._cond.wait(0.5) and not self._queue
                    done = self._stopping and not self._queue
                if done:
                    return
                if idle and self._idle is not None:
                    try:
                        self._idle()
                    except Exception:
                        log.exception("committer: idle hook raised")
                self.run_once()

    def start(self) -> None:
        for t in self._threads:
            t.start()

    def is_alive(self) -> bool:
        return any(t.is_alive() for t in self._threads)

    def stop(self, timeout: float = 30.0) -> None:
        """Commit and answer what was taken in, then end."""
        with self._cond:
            self._stopping = True
            self._cond.notify_all()
            self._deep.notify_all()
        deadline = time.monotonic() + timeout
        for t in self._threads:
            if t.is_alive():
                t.join(max(0.0, deadline - time.monotonic()))
