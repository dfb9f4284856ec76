"""Pipelined group commit: when the next batch may go to the database.

With one committer thread the database idles while the engine builds a batch
and sends its replies, and the engine idles while the database runs the
statements and flushes the COMMIT: about 6 of the 10.5 ms of a batch of 58
authorizations were waits. With two, one batch's COMMIT is flushed while the
next batch's statements run.

The order that one committer gave is kept where it matters. Batches are taken
from the queue in turn, and a batch may send its statements only once the
batch before it has run all of its own: by then that batch holds every row
lock it will take (the grants' conditional UPDATEs, the Stops' ``FOR UPDATE``
reads, the records' keys), so any later batch that touches one of those rows
waits for that COMMIT and then sees it. Batches that touch none may commit in
either order, which nothing can tell apart. Reads that lock nothing cannot see
an uncommitted batch; the ones the store makes decide nothing on their own (a
Stop seen as new still meets the earlier one's key at its INSERT, and the
batch is then applied op by op, as when two engines race).

A store calls ``statements_done()`` when only its COMMIT is left. One that
never does (SQLite, which serializes writers anyway; the stand-alone store,
which holds a process lock) keeps the turn until it returns: one batch at a
time, as before.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager

_local = threading.local()


def statements_done() -> None:
    """This thread's batch has run every statement but its COMMIT: the next
    batch may start. Does nothing outside a committer's turn, and after the
    first call."""
    release: Callable[[], None] | None = getattr(_local, "release", None)
    if release is not None:
        _local.release = None
        release()


@contextmanager
def turn(lock: threading.Lock) -> Iterator[None]:
    """Hold ``lock`` until the store says its statements are done, or the
    block ends, whichever comes first."""
    lock.acquire()
    held = True

    def release() -> None:
        nonlocal held
        if held:
            held = False
            lock.release()

    _local.release = release
    try:
        yield
    finally:
        _local.release = None
        release()
