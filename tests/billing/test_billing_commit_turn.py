"""Pipelined group commit (``[Radius] Commit_Threads``): the next batch runs
its statements while this one's COMMIT is flushed, and never before this
one has run all of its own."""

from __future__ import annotations

import threading

from billing import commit_turn
from billing.committer import Committer
from vigil.testing.wait import wait_until


def _run(c: Committer[int], n: int, done: list[int], expect: int | None = None) -> None:
    for i in range(n):
        assert c.submit(i)
    c.start()
    try:
        wait_until(lambda: len(done) == (n if expect is None else expect), 10, 0.01,
                   what="every batch committed")
    finally:
        c.stop()
    assert not c.is_alive()


def test_the_next_batch_runs_while_this_one_commits_and_never_before_its_statements() -> None:
    statements: list[int] = []
    committed: list[int] = []
    overlapped: list[int] = []
    in_statements = threading.Lock()
    started = {i: threading.Event() for i in range(8)}

    def commit(batch: list[int]) -> None:
        (k,) = batch
        # no two batches are ever in their statements at once
        assert in_statements.acquire(blocking=False), f"batch {k} ran beside another"
        statements.append(k)
        started[k].set()
        in_statements.release()
        commit_turn.statements_done()
        # the "COMMIT": wait until the next batch has started its statements
        if k + 1 in started and started[k + 1].wait(5):
            overlapped.append(k)
        committed.append(k)

    failed: list[list[int]] = []
    c: Committer[int] = Committer(commit, failed.append, max_batch=1, threads=2)
    _run(c, 8, committed)
    assert failed == []
    assert statements == list(range(8))  # queue order, one batch at a time
    assert overlapped == list(range(7))  # every COMMIT overlapped the next batch


def test_a_store_that_never_says_its_statements_are_done_commits_one_batch_at_a_time() -> None:
    """SQLite and the stand-alone store: the turn is held until the commit returns."""
    events: list[tuple[str, int]] = []

    def commit(batch: list[int]) -> None:
        (k,) = batch
        events.append(("begin", k))
        threading.Event().wait(0.01)  # room for another thread to barge in
        events.append(("end", k))

    failed: list[list[int]] = []
    c: Committer[int] = Committer(commit, failed.append, max_batch=1, threads=3)
    ends: list[int] = []
    c._commit = lambda b: (commit(b), ends.append(b[0]))  # type: ignore[method-assign]
    _run(c, 6, ends)
    assert events == [(e, k) for k in range(6) for e in ("begin", "end")]


def test_statements_done_outside_a_turn_and_twice_is_harmless() -> None:
    commit_turn.statements_done()
    lock = threading.Lock()
    with commit_turn.turn(lock):
        assert lock.locked()
        commit_turn.statements_done()
        assert not lock.locked()
        commit_turn.statements_done()
        # another thread may take it now; this block's end must not release it again
        assert lock.acquire(blocking=False)
    assert lock.locked()  # still the other holder's
    lock.release()


def test_a_commit_that_raises_gives_the_turn_back() -> None:
    failed: list[list[int]] = []
    committed: list[int] = []

    def commit(batch: list[int]) -> None:
        if batch == [0]:
            raise RuntimeError("bug")
        committed.append(batch[0])

    c: Committer[int] = Committer(commit, failed.append, max_batch=1, threads=2)
    _run(c, 4, committed, expect=3)
    assert failed == [[0]] and committed == [1, 2, 3]
