"""The relay: spool -> every destination, independently, in batches.

Each destination (a central NSCA server, or an NSCA-NG server) has its own
worker thread and its own cursor file ``cursors/<name>.json``: ``{"segment":
name, "offset": n}`` = the next record to send. A worker reads the next
``batch_size`` records after its cursor, sends them over one connection and
moves the cursor only once the connection closed cleanly (the server has
read everything). While a destination is down its worker retries with
exponential backoff; the others carry on. Segments every cursor has passed
are deleted.

Delivery is at-least-once per destination across a crash: a batch written
and then interrupted by SIGKILL before its cursor moved is sent again after
the restart. Each record carries its spool id on the wire (the Vigil trailer,
see :mod:`nsca.packet`), and a Vigil server drops ids it has already
written, which makes it exactly-once there; NSCA-NG acknowledges every
command, so only the batch in flight can repeat. A C ``nsca`` has no way to
tell, so it can see one batch (<= Batch_Size results) twice if the relay is
killed at that moment. docs/nsca.md explains the choice.

New spool files are noticed through ``watchdog`` (inotify), with a periodic
rescan as a safety net.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Sequence
from pathlib import Path

from watchdog.events import FileSystemEvent, FileSystemEventHandler
from watchdog.observers import Observer
from watchdog.observers.api import BaseObserver

from nsca import packet
from nsca.cursor import Cursor, read_cursor, write_cursor
from nsca.destinations import CommandFileDestination, Destination, NSCADestination
from nsca.errors import FieldError, NSCAError, SpoolError
from nsca.result import unsafe_name
from nsca.spool import SUFFIX, Record, read_segment, ready_segments
from vigil.drop_log import NSCA_STYLE, DropLog
from vigil.pidlock import LockError, LockHeld, PidLock

__all__ = ["Relay", "Cursor", "read_cursor", "write_cursor", "Destination",
           "NSCADestination", "CommandFileDestination"]

log = logging.getLogger(__name__)


class _QuietStop(logging.Filter):
    """watchdog logs an ERROR when an inotify event races its own stop; harmless."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "called when the thread is inactive" not in record.getMessage()


logging.getLogger("watchdog.observers.inotify").addFilter(_QuietStop())


class _SegmentReader:
    """Reads records after a cursor; keeps the current segment parsed in memory."""

    def __init__(self, spool: Path) -> None:
        self.spool = Path(spool)
        self._known: list[str] = []
        self._cache: tuple[str, list[Record]] | None = None

    def _records(self, name: str) -> list[Record] | None:
        if self._cache and self._cache[0] == name:
            return self._cache[1]
        try:
            recs = read_segment(self.spool / "ready" / name)
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise SpoolError(f"cannot read spool segment {name}: {exc.strerror}") from exc
        self._cache = (name, recs)
        return recs

    def next_batch(self, cur: Cursor, n: int) -> tuple[list[Record], list[Cursor], Cursor]:
        """Up to ``n`` records after ``cur``, the cursor after each, the cursor after all."""
        out: list[Record] = []
        after: list[Cursor] = []
        seg, off = cur.segment, cur.offset
        refreshed = False
        while len(out) < n:
            candidates = [s for s in self._known if s >= seg]
            if not candidates:
                if refreshed:
                    break
                self._known = ready_segments(self.spool)
                refreshed = True
                continue
            name = candidates[0]
            if name != seg:
                seg, off = name, 0
            recs = self._records(name)
            if recs is None:  # vanished (only a hand-cleaned spool does that)
                self._known.remove(name)
                continue
            take = recs[off:off + n - len(out)]
            out.extend(take)
            after.extend(Cursor(name, off + i + 1) for i in range(len(take)))
            off += len(take)
            if off >= len(recs):
                later = [s for s in self._known if s > name]
                if not later and not refreshed:
                    self._known = ready_segments(self.spool)
                    refreshed = True
                    later = [s for s in self._known if s > name]
                if not later:
                    break
                seg, off = later[0], 0
        return out, after, Cursor(seg, off)


class _Worker(threading.Thread):
    def __init__(self, relay: Relay, dest: Destination) -> None:
        super().__init__(name=f"relay-{dest.name}", daemon=True)
        self.relay = relay
        self.dest = dest
        self.wake = threading.Event()
        self.reader = _SegmentReader(relay.spool)
        self.cursor = read_cursor(relay.spool, dest.name)
        self.sent = 0
        self.refused = 0
        self.failures = 0
        self.down_since: float | None = None

    def run(self) -> None:
        relay = self.relay
        self.delay = relay.retry_min
        while not relay.stopping.is_set():
            try:
                self._step()
            except Exception:
                # A worker that dies silently is a destination nobody feeds.
                log.exception("%s: unexpected failure; retrying", self.dest)
                relay.stopping.wait(relay.retry_max)

    def _step(self) -> None:
        relay, dest = self.relay, self.dest
        try:
            batch, each, after = self.reader.next_batch(self.cursor, dest.batch_size)
        except SpoolError as exc:
            log.error("%s: %s", dest, exc)
            relay.stopping.wait(self.delay)
            return
        if not batch:
            if after != self.cursor:
                self._advance(after)
            self.wake.wait(relay.rescan_interval)
            self.wake.clear()
            return
        sendable = self._sendable(batch)
        try:
            if sendable:
                dest.send(sendable)
        except NSCAError as exc:
            # NSCA-NG acknowledges each result: keep what was acknowledged.
            done = getattr(exc, "delivered", 0)
            if done:
                self.sent += done
                self._advance(each[batch.index(sendable[done - 1])])
            self.failures += 1
            if self.down_since is None:
                self.down_since = time.monotonic()
                log.warning("%s: cannot deliver (%s); retrying with backoff", dest, exc)
            else:
                log.debug("%s: still failing: %s", dest, exc)
            relay.stopping.wait(self.delay)
            self.delay = min(self.delay * 2, relay.retry_max)
            return
        if self.down_since is not None:
            log.info("%s: delivering again after %.0fs", dest,
                     time.monotonic() - self.down_since)
            self.down_since = None
        self.delay = relay.retry_min
        self.sent += len(sendable)
        self._advance(after)

    def _sendable(self, batch: list[Record]) -> list[Record]:
        # Checked again here, not only at the server: a spool written by an older
        # version (or by hand) may hold a name that would forge a Nagios command.
        out = []
        for r in batch:
            why = unsafe_name(r.result)
            if why:
                self.refused += 1
                self.relay.drops.note(str(self.dest), "forged name", f"{r.result.host};"
                                     f"{r.result.service or ''}")
                continue
            try:
                packet.check_fields(r.result)
            except FieldError as exc:
                self.refused += 1
                self.relay.drops.note(str(self.dest), "unsendable", str(exc))
                continue
            out.append(r)
        return out

    def _advance(self, cur: Cursor) -> None:
        self.cursor = cur
        failing = False
        while True:
            try:
                write_cursor(self.relay.spool, self.dest.name, cur,
                             fsync=self.relay.cursor_fsync)
            except OSError as exc:
                # Sending on without a recorded cursor would widen what a crash
                # re-sends: hold this destination until the cursor is on disk.
                if not failing:
                    log.error("%s: cannot record the cursor (%s); holding further sends",
                              self.dest, exc.strerror)
                    failing = True
                if self.relay.stopping.wait(self.relay.retry_min):
                    return
                continue
            if failing:
                log.info("%s: cursor recorded again", self.dest)
            return


class _Wakeup(FileSystemEventHandler):
    def __init__(self, relay: Relay) -> None:
        self.relay = relay

    def on_any_event(self, event: FileSystemEvent) -> None:
        path = str(getattr(event, "dest_path", "") or event.src_path)
        if path.endswith(SUFFIX):
            self.relay.wake()


class Relay:
    def __init__(self, spool: Path, destinations: Sequence[Destination], *,
                 retry_min: float = 1.0, retry_max: float = 60.0, cursor_fsync: bool = False,
                 rescan_interval: float = 2.0) -> None:
        if not destinations:
            raise NSCAError("no destinations: set [NSCA] Central_Servers or NG_Servers")
        names = [d.name for d in destinations]
        if len(set(names)) != len(names):
            raise NSCAError(f"the same destination is listed twice: {names}")
        self.spool = Path(spool)
        for d in ("ready", "open", "cursors"):
            (self.spool / d).mkdir(parents=True, exist_ok=True)
        self.retry_min = retry_min
        self.retry_max = retry_max
        self.cursor_fsync = cursor_fsync
        self.rescan_interval = rescan_interval
        self.stopping = threading.Event()
        self.drops = DropLog(log, max_sources=100, style=NSCA_STYLE)
        self.workers = [_Worker(self, d) for d in destinations]
        # Observer is a name bound to the platform's class at import; its base is the type
        self._observer: BaseObserver | None = None
        self._pidlock: PidLock | None = None

    def wake(self) -> None:
        for w in self.workers:
            w.wake.set()

    def _lock(self) -> None:
        # Two relays on one spool would both send everything: refuse the second.
        lock = PidLock(self.spool / "relay.lock", what="relay")
        try:
            lock.acquire()
        except LockHeld as exc:
            raise NSCAError(f"another relay (pid {exc.pid or '?'}) is running on "
                            f"{self.spool}") from None
        except LockError as exc:
            raise NSCAError(str(exc)) from exc
        self._pidlock = lock

    def start(self) -> None:
        self._lock()
        self._observer = Observer()
        self._observer.schedule(_Wakeup(self), str(self.spool / "ready"), recursive=False)
        self._observer.start()
        for w in self.workers:
            w.start()
        log.info("relaying %s to %s", self.spool, ", ".join(str(w.dest) for w in self.workers))

    def run(self) -> None:
        """Start, then collect finished segments until :meth:`stop`."""
        self.start()
        last_stats = time.monotonic()
        try:
            while not self.stopping.wait(1.0):
                self.collect()
                if not self.cursor_fsync:
                    _fsync_dir(self.spool / "cursors")
                self.drops.tick()
                if time.monotonic() - last_stats >= 60:
                    last_stats = time.monotonic()
                    log.info("relay: %s", self.summary())
        finally:
            self.shutdown()

    def stop(self) -> None:
        self.stopping.set()
        self.wake()

    def shutdown(self) -> None:
        self.stopping.set()
        self.wake()
        for w in self.workers:
            if w.is_alive():
                w.join(30)
        if self._observer is not None:
            self._observer.stop()
            self._observer.join(5)
            self._observer = None
        _fsync_dir(self.spool / "cursors")
        self.collect()
        self.drops.flush()
        if self._pidlock is not None:
            self._pidlock.release()
            self._pidlock = None
        log.info("relay stopped: %s", self.summary())

    def summary(self) -> str:
        return " ".join(f"{w.dest}: sent={w.sent} refused={w.refused} failures={w.failures}"
                        f"{' DOWN' if w.down_since is not None else ''}" for w in self.workers)

    def collect(self) -> int:
        """Delete segments every destination has passed; the number deleted."""
        cursors = [w.cursor for w in self.workers]
        low = min(cursors, key=lambda c: (c.segment, c.offset))
        removed = 0
        for name in ready_segments(self.spool):
            path = self.spool / "ready" / name
            if not low.segment or name > low.segment:
                break
            if name == low.segment:
                # everyone sits at the end of the newest segment: it is done too
                try:
                    lines = path.read_bytes().count(b"\n")
                except FileNotFoundError:
                    break
                if any(c.segment != name or c.offset < lines for c in cursors):
                    break
            try:
                path.unlink()
                removed += 1
            except FileNotFoundError:
                pass
        return removed

    def backlog(self) -> dict[str, int]:
        """Records not yet delivered, per destination (reads the spool)."""
        out = {}
        for w in self.workers:
            n = 0
            for name in ready_segments(self.spool):
                if name < w.cursor.segment:
                    continue
                recs = read_segment(self.spool / "ready" / name)
                n += len(recs) - (w.cursor.offset if name == w.cursor.segment else 0)
            out[str(w.dest)] = n
        return out


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
