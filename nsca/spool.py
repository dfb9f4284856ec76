"""The on-disk spool between the receiving server and the relay.

Layout under ``Spool_Dir``::

    open/<name>.jsonl       the segment being written (one per writer)
    ready/<name>.jsonl      sealed segments: fsynced, renamed, never changed again
    cursors/<server>.json   per central server: {"segment": name, "offset": n}
                            = every record before record n of that segment is sent

A record is one JSON line: ``{"id": hex, "h": host, "s": service|null,
"c": code, "o": output, "t": check time}``. Segment names sort in the order
they were written (``<ns time>-<pid>-<seq>``). The writer seals a segment
every ``seal_interval`` seconds or ``segment_max`` records, or at once when
a caller waits until what it handed over is sealed (the server closes an
NSCA connection only then, so a Vigil client that saw the close knows its
results are on disk; connections closing together share one fsync).
"""

from __future__ import annotations

import contextlib
import errno
import io
import json
import logging
import os
import threading
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from nsca.errors import SpoolError
from nsca.result import STATUS_MAX, STATUS_MIN, CheckResult, from_bytes, to_bytes
from vigil.processes import pid_alive

log = logging.getLogger(__name__)

SUFFIX = ".jsonl"


@dataclass(frozen=True)
class Record:
    rid: bytes
    result: CheckResult


def encode_record(rec: Record) -> bytes:
    r = rec.result
    # to_bytes: a byte that was not UTF-8 goes to disk as that byte (see decode_record)
    line = json.dumps({"id": rec.rid.hex(), "h": r.host, "s": r.service, "c": r.status,
                       "o": r.output, "t": r.timestamp}, ensure_ascii=False,
                      separators=(",", ":"))
    return to_bytes(line + "\n")


def decode_record(line: bytes) -> Record:
    """One spool line; ValueError for anything a worker could choke on later."""
    # Bytes that are not UTF-8 (a Latin-1 host name) are stored as they came
    # and read back to the same lone surrogates, so they leave byte for byte.
    d = json.loads(from_bytes(line))
    rid = bytes.fromhex(d["id"])
    if len(rid) != 16:
        raise ValueError(f"result id of {len(rid)} bytes, not 16")
    if not isinstance(d["h"], str) or not isinstance(d["o"], str) or \
            (d["s"] is not None and not isinstance(d["s"], str)):
        raise ValueError("host, service and output must be text")
    if type(d["c"]) is not int or not STATUS_MIN <= d["c"] <= STATUS_MAX:
        raise ValueError(f"status {d['c']!r} is not a 16-bit code")
    if d["t"] is not None and not isinstance(d["t"], int | float):
        raise ValueError(f"timestamp {d['t']!r} is not a number")
    return Record(rid, CheckResult(d["h"], d["s"], d["c"], d["o"], d["t"]))


def read_segment(path: Path) -> list[Record]:
    """Every record of a sealed segment; a bad line is logged and skipped."""
    records = []
    with open(path, "rb") as fh:
        for n, line in enumerate(fh, 1):
            try:
                records.append(decode_record(line))
            except (ValueError, KeyError, TypeError) as exc:
                log.error("spool %s line %d: unreadable record skipped (%s)", path.name, n, exc)
    return records


def _writer_alive(name: str) -> bool:
    try:
        pid = int(name.split("-")[1])
    except (IndexError, ValueError):
        return False
    if pid == os.getpid():
        return False
    return pid_alive(pid)


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class SpoolWriter:
    """Appends records, seals segments with group commit; thread-safe."""

    def __init__(self, root: Path, *, seal_interval: float = 0.2,
                 segment_max: int = 5000, retry_after: float = 5.0) -> None:
        self.root = Path(root)
        self.open_dir = self.root / "open"
        self.ready_dir = self.root / "ready"
        for d in (self.open_dir, self.ready_dir, self.root / "cursors"):
            d.mkdir(parents=True, exist_ok=True)
        self.seal_interval = seal_interval
        self.segment_max = segment_max
        self._cond = threading.Condition()
        self._fh: io.BufferedWriter | None = None
        self._name: str | None = None
        self._count = 0
        self._seq = 0
        self._appended = 0  # records handed to the OS
        self._sealed = 0    # records fsynced and renamed into ready/
        self._opened_at = 0.0
        self._stop = False
        self._waiters = 0
        self.failed: str | None = None
        self._failed_at = 0.0
        self.retry_after = retry_after
        self._recover()
        self._thread = threading.Thread(target=self._sealer, name="spool-sealer", daemon=True)
        self._thread.start()

    def _recover(self) -> None:
        """Seal segments a crashed writer left open (their whole lines are kept)."""
        for path in sorted(self.open_dir.glob("*" + SUFFIX)):
            if _writer_alive(path.name):
                continue  # another server on the same spool: its segment, not ours
            data = path.read_bytes()
            cut = data.rfind(b"\n") + 1
            if cut < len(data):
                log.warning("spool %s: dropping a torn last record (%d bytes)",
                            path.name, len(data) - cut)
                with open(path, "r+b") as fh:
                    fh.truncate(cut)
            if cut == 0:
                path.unlink()
                continue
            with open(path, "rb") as fh:
                os.fsync(fh.fileno())
            os.replace(path, self.ready_dir / path.name)
            log.info("spool: recovered segment %s", path.name)
        _fsync_dir(self.ready_dir)

    def _new_name(self) -> str:
        self._seq += 1
        return f"{time.time_ns():020d}-{os.getpid()}-{self._seq:06d}{SUFFIX}"

    def append(self, records: Iterable[Record]) -> int:
        """Hand records to the spool; returns a ticket for :meth:`wait_sealed`."""
        data = b"".join(encode_record(r) for r in records)
        with self._cond:
            if self.failed:
                if time.monotonic() - self._failed_at < self.retry_after:
                    raise SpoolError(self.failed)
                log.info("spool %s: trying to write again", self.root)
                self.failed = None
            if not data:
                return self._appended
            n = data.count(b"\n")
            try:
                if self._fh is None:
                    self._name = self._new_name()
                    self._fh = open(self.open_dir / self._name, "ab")  # noqa: SIM115
                    self._opened_at = time.monotonic()
                self._fh.write(data)
                self._fh.flush()
            except OSError as exc:
                self._fail(exc)
            self._count += n
            self._appended += n
            if self._count >= self.segment_max:
                self._seal_locked()
            else:
                self._cond.notify_all()
            return self._appended

    def _fail(self, exc: OSError) -> None:
        why = "disk full" if exc.errno == errno.ENOSPC else exc.strerror
        self.failed = f"spool {self.root}: cannot write: {why}"
        self._failed_at = time.monotonic()
        log.error("%s; refusing new results for %gs", self.failed, self.retry_after)
        self._abandon()
        raise SpoolError(self.failed) from exc

    def _abandon(self) -> None:
        """Close the segment that failed; keep its whole lines if they can be sealed."""
        fh, name = self._fh, self._name
        self._fh, self._name, self._count = None, None, 0
        if fh is None or name is None:
            return
        with contextlib.suppress(OSError):
            fh.close()
        path = self.open_dir / name
        try:
            data = path.read_bytes()
            cut = data.rfind(b"\n") + 1
            with open(path, "r+b") as f:
                f.truncate(cut)
                os.fsync(f.fileno())
            if cut:
                os.replace(path, self.ready_dir / name)
                _fsync_dir(self.ready_dir)
            else:
                path.unlink()
        except OSError as exc:
            # Left in open/: the next start of the server recovers it.
            log.warning("spool %s: segment %s left for recovery: %s", self.root, name,
                        exc.strerror)

    def _seal_locked(self) -> None:
        if self._fh is None:
            return
        fh, name = self._fh, self._name
        assert name is not None
        self._fh, self._name, self._count = None, None, 0
        try:
            os.fsync(fh.fileno())
            fh.close()
            os.replace(self.open_dir / name, self.ready_dir / name)
            _fsync_dir(self.ready_dir)
        except OSError as exc:
            self._fail(exc)
        self._sealed = self._appended
        self._cond.notify_all()

    def _sealer(self) -> None:
        with self._cond:
            while not self._stop:
                if self._fh is None:
                    self._cond.wait()
                    continue
                left = self._opened_at + self.seal_interval - time.monotonic()
                # Someone waits for its results to be on disk (a connection about
                # to close): seal now; concurrent connections share the fsync.
                if left > 0 and not self._waiters:
                    self._cond.wait(left)
                    continue
                with contextlib.suppress(SpoolError):
                    self._seal_locked()

    def wait_sealed(self, ticket: int, timeout: float = 30.0) -> bool:
        deadline = time.monotonic() + timeout
        with self._cond:
            self._waiters += 1
            self._cond.notify_all()
            try:
                while self._sealed < ticket and not self.failed:
                    left = deadline - time.monotonic()
                    if left <= 0:
                        return False
                    self._cond.wait(left)
                return self._sealed >= ticket
            finally:
                self._waiters -= 1

    def close(self) -> None:
        with self._cond:
            self._stop = True
            with contextlib.suppress(SpoolError):
                self._seal_locked()
            self._cond.notify_all()
        self._thread.join(5)


def ready_segments(root: Path) -> list[str]:
    return sorted(p.name for p in (Path(root) / "ready").glob("*" + SUFFIX))


def iter_records_after(root: Path, segment: str, offset: int) -> Iterator[tuple[str, int, Record]]:
    for name in ready_segments(root):
        if name < segment:
            continue
        for i, rec in enumerate(read_segment(Path(root) / "ready" / name)):
            if name == segment and i < offset:
                continue
            yield name, i, rec
