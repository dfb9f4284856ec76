"""Billing time: the billing database's UTC clock, carried between readings by
this machine's elapsed-time clock.

Engines on several servers share one database and compare each other's
timestamps: a call's ``expires_at`` (the sweep releases the reservation of a
call whose Stop never came), an account's ``login_until`` (the simultaneous
-login hold, in the conditional UPDATE), ``ended_calls.forget_at``. Were each
engine to read its own wall clock, one server's NTP step or VM resume would
expire other engines' live calls early (their reservations given back while
the calls still spend: money spent twice), and a step back would write login
holds that are already over.

So billing time is the database's ``UTC_TIMESTAMP(6)`` read at an *anchor*
plus the seconds elapsed since on ``CLOCK_BOOTTIME`` (never stepped, and,
unlike ``CLOCK_MONOTONIC``, it counts a suspend). Reading it never waits on the
database: :meth:`BillingClock.anchor` runs as a chore, off the packet path.
On SQLite the database is a file on this machine and its clock is this
machine's wall clock.

- A step of this machine's wall clock changes nothing in billing time; the
  anchor chore logs it once (how far, which direction).
- Corrections within ``tolerance`` (drift, a round trip) are taken silently.
- A jump of the database's own clock is logged and followed, so that every
  engine, including one started after it, keeps telling the same time. Back
  is the safe side (calls expire later, holds last longer). Forward would
  expire the calls that were up at the jump early, so the expiry sweep uses
  :class:`SweepCutoff`: its time never runs more than 0.1 % faster than the
  elapsed time, whatever billing time does.

Imports nothing of billing (a leaf): the clock is handed to the engine, the
store and the heartbeat by the wiring (``billing/app.py``).
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy import text
from sqlalchemy.engine import Engine

from vigil.clock import utcnow

log = logging.getLogger(__name__)

_EPOCH = dt.datetime(1970, 1, 1)


def elapsed_seconds() -> float:
    """Seconds on a clock that is never stepped and counts a suspend."""
    return time.clock_gettime(time.CLOCK_BOOTTIME)


def database_time(db: Engine) -> dt.datetime:
    """The database's UTC time now (naive, as DATETIME columns hold it)."""
    if db.dialect.name == "sqlite":
        return utcnow()  # a file on this machine: this machine's clock is the database's
    with db.connect() as conn:
        value = conn.execute(text("SELECT UTC_TIMESTAMP(6)")).scalar_one()
    assert isinstance(value, dt.datetime)
    return value


def _seconds(delta: dt.timedelta) -> float:
    return delta.total_seconds()


def _direction(seconds: float) -> str:
    return "forward" if seconds > 0 else "back"


@dataclass(frozen=True)
class _Anchor:
    time: dt.datetime  # billing time at ``at``
    at: float  # elapsed_seconds() then
    wall_offset: float | None  # wall clock minus elapsed clock then (None: not read)


class BillingClock:
    """``clock()`` is billing time (naive UTC); ``clock.anchor()`` re-reads the
    database's time and is the only method that waits on it."""

    def __init__(self, reference: Callable[[], dt.datetime], *, local: bool = False,
                 elapsed: Callable[[], float] = elapsed_seconds,
                 wall: Callable[[], dt.datetime] = utcnow, tolerance: float = 1.0,
                 name: str = "database") -> None:
        self.reference = reference
        self.local = local  # the reference is this machine's wall clock (SQLite)
        self.elapsed = elapsed
        self.wall = wall
        self.tolerance = tolerance
        self.name = name
        self.anchored = False
        # Until the first reading: this machine's clock (the wiring anchors at start).
        self._anchor = _Anchor(wall(), elapsed(), None)
        self._anchoring = threading.Lock()

    @classmethod
    def of_database(cls, db: Engine) -> BillingClock:
        local = db.dialect.name == "sqlite"
        return cls(lambda: database_time(db), local=local,
                   name="SQLite (this machine's)" if local else "database")

    def __call__(self) -> dt.datetime:
        a = self._anchor  # one attribute read: the chore replaces it whole
        return a.time + dt.timedelta(seconds=self.elapsed() - a.at)

    def _wall_offset(self) -> float:
        return _seconds(self.wall() - _EPOCH) - self.elapsed()

    def anchor(self) -> float:
        """Read the database's time (off the packet path). Returns the
        correction applied to billing time, in seconds (+ forward)."""
        with self._anchoring:
            before = self.elapsed()
            ref = self.reference()
            after = self.elapsed()
            if self.anchored and after - before > self.tolerance:
                # The database read its clock somewhere in this round trip: too
                # slow a one is too vague to correct by; keep counting.
                log.info("%s clock not re-read: the round trip took %.3f s", self.name,
                         after - before)
                return 0.0
            at = (before + after) / 2  # the middle of the round trip
            wall_offset = None if self.local else self._wall_offset()
            old = self._anchor
            predicted = old.time + dt.timedelta(seconds=at - old.at)
            correction = _seconds(ref - predicted)
            if self.anchored and abs(correction) > self.tolerance:
                if correction > 0:
                    log.warning(
                        "%s clock jumped forward by %.3f s against billing time (%s expected, "
                        "%s read); billing time follows it, calls up at the jump expire by "
                        "the elapsed time", self.name, correction, predicted.isoformat(),
                        ref.isoformat())
                else:
                    log.warning(
                        "%s clock jumped back by %.3f s against billing time (%s expected, "
                        "%s read); billing time follows it (calls expire later, login holds "
                        "last longer)", self.name, -correction, predicted.isoformat(),
                        ref.isoformat())
            if old.wall_offset is not None and wall_offset is not None:
                step = wall_offset - old.wall_offset
                if abs(step) > self.tolerance:
                    log.warning(
                        "local wall clock stepped %s by %.3f s (NTP step, VM resume or an "
                        "admin); billing keeps the %s clock's time %s", _direction(step), abs(step),
                        self.name, ref.isoformat())
            self._anchor = _Anchor(ref, at, wall_offset)
            first, self.anchored = not self.anchored, True
        if first:
            log.info("billing time anchored on the %s clock: %s (this machine's wall clock "
                     "%+.3f s from it)", self.name, ref.isoformat(),
                     _seconds(self.wall() - self()))
        return 0.0 if first else correction


class SweepCutoff:
    """The time an expiry sweep may use: billing time, except that it never
    gets ahead of the previous sweep's by more than the elapsed time plus
    ``speedup`` of it (0.1 %: faster than any drift between two clocks, slow
    enough that a call of the longest credit time loses seconds, not its
    lifetime: 14,400 s lose at most 14.4 s of the ``Default_Lifetime`` +
    window it lives past them; ``Lifetimes.sweep_speedup`` picks it).
    So a forward jump of billing time never expires the calls that were up."""

    def __init__(self, elapsed: Callable[[], float] = elapsed_seconds,
                 speedup: float = 0.001) -> None:
        self.elapsed = elapsed
        self.rate = 1.0 + speedup
        self._last: tuple[dt.datetime, float] | None = None
        self._held = 0.0  # how far behind billing time the last line said

    def __call__(self, now: dt.datetime) -> dt.datetime:
        at = self.elapsed()
        cutoff = now
        if self._last is not None:
            last, last_at = self._last
            cutoff = min(now, last + dt.timedelta(seconds=max(0.0, at - last_at) * self.rate))
        behind = _seconds(now - cutoff)
        if behind > self._held + 1.0:
            log.warning("call expiry held back %.3f s behind billing time (it moved further "
                        "than the elapsed time): no call is forgotten before its lifetime "
                        "has elapsed", behind)
            self._held = behind
        elif behind < 1.0:
            self._held = 0.0
        self._last = (cutoff, at)
        return cutoff
