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


def _held_first_batch(pipeline_wait: float) -> tuple[Committer[int], list[list[int]],
                                                      threading.Event, threading.Event]:
    """Two threads, batches of up to 64 (work enough to pipeline: 8); the
    first batch's COMMIT is held until ``release`` is set."""
    batches: list[list[int]] = []
    in_commit = threading.Event()
    release = threading.Event()

    def commit(batch: list[int]) -> None:
        batches.append(list(batch))
        commit_turn.statements_done()
        if batch[0] == 0:
            in_commit.set()
            assert release.wait(30)

    c: Committer[int] = Committer(commit, lambda _: None, max_batch=64, threads=2,
                                  pipeline_wait=pipeline_wait)
    assert c.pipeline_from == 8
    c.start()
    assert c.submit(0)
    assert in_commit.wait(10)
    return c, batches, in_commit, release


def test_a_short_queue_waits_for_the_batch_in_flight_and_joins_the_next_one() -> None:
    """At a low rate two threads committing a request each, side by side,
    cost a whole batch per request: the second waits and takes them together."""
    c, batches, _, release = _held_first_batch(pipeline_wait=60)
    try:
        for i in (1, 2, 3):
            assert c.submit(i)
        threading.Event().wait(0.2)  # room for the other thread to barge in (it must not)
        assert batches == [[0]]
        release.set()
        wait_until(lambda: len(batches) == 2, 10, 0.01, what="the second batch")
        assert batches == [[0], [1, 2, 3]]
    finally:
        release.set()
        c.stop()


def test_a_deep_queue_is_committed_beside_the_batch_in_flight() -> None:
    c, batches, _, release = _held_first_batch(pipeline_wait=60)
    try:
        for i in range(1, 9):  # pipeline_from: worth a batch of its own at once
            assert c.submit(i)
        wait_until(lambda: len(batches) == 2, 10, 0.01, what="the pipelined batch")
        assert batches == [[0], list(range(1, 9))]  # while batch 0 is still in flight
    finally:
        release.set()
        c.stop()


def test_a_batch_stuck_in_flight_holds_a_short_queue_back_only_so_long() -> None:
    """A batch waiting on another engine's row lock (up to the query
    timeout) must not hold the requests behind it: after ``pipeline_wait``
    they go beside it."""
    c, batches, _, release = _held_first_batch(pipeline_wait=0.05)
    try:
        assert c.submit(1)
        wait_until(lambda: len(batches) == 2, 10, 0.01, what="the small batch beside it")
        assert batches == [[0], [1]]
    finally:
        release.set()
        c.stop()
