"""The committer: the one thread that writes to the billing database.

The packet loop hands it accounting records and goes on answering
Access-Requests; the committer takes everything that arrived while it was
busy, commits it in one transaction (group commit), and only then sends the
Accounting-Responses. Between commits it does the database chores (writing
reservations behind, refreshing cached accounts, forgetting expired calls,
the counters file), so the packet loop never waits on the database for them.
"""

from __future__ import annotations

import logging
import threading
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from billing.server import Pending, RadiusServer

log = logging.getLogger(__name__)


class Committer(threading.Thread):
    def __init__(self, server: RadiusServer, max_batch: int, idle: float = 0.2) -> None:
        super().__init__(name="committer", daemon=True)
        self.server = server
        self.max_batch = max(1, max_batch)
        self.idle = idle
        self._pending: list[Pending] = []
        self._cond = threading.Condition()
        self._stopping = False

    def submit(self, pending: Pending) -> None:
        with self._cond:
            self._pending.append(pending)
            self._cond.notify()

    def backlog(self) -> int:
        with self._cond:
            return len(self._pending)

    def run(self) -> None:
        while True:
            with self._cond:
                if not self._pending and not self._stopping:
                    self._cond.wait(self.idle)
                batch = self._pending[:self.max_batch]
                del self._pending[:self.max_batch]
                done = self._stopping and not batch
            try:
                if batch:
                    self.server.commit(batch)
                else:
                    self.server.housekeeping()
            except Exception:
                # A bug here must not silently stop every future commit.
                log.exception("committer: unexpected error; records of this batch are not "
                              "acknowledged and will be retransmitted by the gateways")
                for p in batch:
                    self.server._forget(p.raw_key)
            if done:
                return

    def stop(self, timeout: float = 30.0) -> None:
        """Commit and answer what was taken in, then end."""
        with self._cond:
            self._stopping = True
            self._cond.notify()
        if self.is_alive():
            self.join(timeout)
