"""billing/gc_pauses.py: the collector's pauses counted, and told in the log
at most once a minute; `vigil status` shows them per engine process.

Real collections (``gc.collect()``) run the hook; the clock the hook reads is
the test's, so a pause is as long as the test says, whatever this machine's
speed."""

from __future__ import annotations

import gc
import logging
from collections.abc import Iterator

import pytest

from billing.cli import _gc_part
from billing.gc_pauses import GcPauses


class Clock:
    """Each read is ``step`` seconds after the one before."""

    def __init__(self, step: float) -> None:
        self.t = 0.0
        self.step = step

    def __call__(self) -> float:
        self.t += self.step
        return self.t


class Pauses:
    """GcPauses made by a test, each with its pause length; one wall clock."""

    def __init__(self) -> None:
        self.wall = 1000.0
        self.made: list[GcPauses] = []

    def __call__(self, pause_ms: float) -> GcPauses:
        p = GcPauses(slow_ms=10.0, clock=Clock(pause_ms / 1000.0), wall=lambda: self.wall)
        p.install()
        self.made.append(p)
        return p


@pytest.fixture
def pauses() -> Iterator[Pauses]:
    made = Pauses()
    yield made
    for p in made.made:
        p.uninstall()
    assert not any(p._on_collection in gc.callbacks for p in made.made)


def test_each_collection_is_timed_and_counted(pauses: Pauses) -> None:
    p = pauses(3.0)
    gc.collect()
    gc.collect(0)
    snap = p.snapshot()
    assert snap["gc_collections"] >= 2  # the test's two, and any the interpreter ran
    assert snap["gc_pause_ms_max"] == 3.0
    assert snap["gc_pause_ms_total"] == pytest.approx(3.0 * snap["gc_collections"])
    assert snap["gc_slow_pauses"] == 0 and snap["gc_slow_ms"] == 10.0


def test_slow_pauses_are_told_once_a_minute(pauses: Pauses,
                                            caplog: pytest.LogCaptureFixture) -> None:
    p = pauses(25.0)
    caplog.set_level(logging.WARNING, logger="billing.gc_pauses")
    gc.collect(2)
    gc.collect(0)
    p.report()
    told = [r.getMessage() for r in caplog.records]
    assert len(told) == 1
    assert "garbage collection stopped the engine for 10 ms or more" in told[0]
    assert "longest 25.0 ms (generation 2)" in told[0]
    gc.collect()
    p.report()  # within the minute: nothing more
    assert len(caplog.records) == 1
    pauses.wall += 61
    p.report()  # a minute on: the pause since the last line, told
    assert len(caplog.records) == 2 and "1 time since" in caplog.records[1].getMessage()
    pauses.wall += 61
    p.report()  # nothing slow since: silence
    assert len(caplog.records) == 2
    assert p.snapshot()["gc_slow_pauses"] >= 3


def test_the_hook_is_installed_once(pauses: Pauses) -> None:
    p = pauses(1.0)
    p.install()
    assert gc.callbacks.count(p._on_collection) == 1


def test_status_line_of_a_process() -> None:
    data = {"gc_pause_ms_max": 23.46, "gc_slow_ms": 10.0, "gc_slow_pauses": 4}
    assert _gc_part(data) == ", gc pauses over 10 ms: 4 (longest 23.5 ms)"
    # an older engine's file, or a damaged one: nothing rather than nonsense
    assert _gc_part({}) == ""
    for bad in ("5", True, -1, None, [3]):
        assert _gc_part({**data, "gc_slow_pauses": bad}) == ""
