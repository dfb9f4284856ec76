"""The replies kept for retransmissions (billing.server.ReplyCache): kept at
least their time, at most twice it, and never walked by the garbage
collector once it has seen they hold only plain values."""

from __future__ import annotations

import gc

from billing.server import ReplyCache


class Clock:
    def __init__(self) -> None:
        self.t = 100.0

    def __call__(self) -> float:
        return self.t


def key(i: int) -> tuple[str, int, int, bytes]:
    return ("10.0.0.1", 40000 + i, i % 256, i.to_bytes(16, "big"))


def test_a_reply_is_kept_at_least_its_time_and_at_most_twice_it():
    clock = Clock()
    rc = ReplyCache(30.0, clock=clock)
    rc.remember(key(1), b"reply")
    for t in (0.0, 15.0, 29.9, 30.0, 45.0, 59.9):
        clock.t = 100.0 + t
        rc.trim()
        assert rc.get(key(1)) == (True, b"reply"), t
    clock.t = 160.0
    rc.trim()
    assert rc.get(key(1)) is None and len(rc) == 0


def test_pending_then_answered_then_forgotten():
    clock = Clock()
    rc = ReplyCache(30.0, clock=clock)
    assert rc.get(key(2)) is None
    rc.remember(key(2), None)  # being decided: a retransmission waits
    assert rc.get(key(2)) == (True, None)
    clock.t += 31
    rc.trim()  # now in the old generation
    rc.remember(key(2), b"accept")  # answered: young again, kept its full time
    clock.t += 31
    rc.trim()
    assert rc.get(key(2)) == (True, b"accept")
    rc.forget(key(2))
    assert rc.get(key(2)) is None


def test_forget_reaches_both_generations():
    clock = Clock()
    rc = ReplyCache(30.0, clock=clock)
    rc.remember(key(3), b"old")
    clock.t += 31
    rc.trim()
    rc.remember(key(4), b"young")
    rc.forget(key(3))
    rc.forget(key(4))
    assert rc.get(key(3)) is None and rc.get(key(4)) is None and len(rc) == 0


def test_the_collector_leaves_a_full_cache_alone():
    # the property that keeps full collections short under load: after one
    # collection has seen the keys and replies are plain values, neither
    # generation is tracked (an OrderedDict always was, and every entry was
    # visited at every full collection)
    clock = Clock()
    rc = ReplyCache(30.0, clock=clock)
    for i in range(5000):
        rc.remember(key(i), bytes(40) if i % 3 else None)
    clock.t += 31
    rc.trim()
    for i in range(5000, 10000):
        rc.remember(key(i), bytes(40))
    gc.collect()
    assert not gc.is_tracked(rc._young) and not gc.is_tracked(rc._old)
    assert len(rc) == 10000
