"""Nagios external commands: formatting (pure) and the command-file sink.

Escaping: Nagios unescapes ``\\n`` and ``\\\\`` in plugin output, so a
backslash is doubled and a newline becomes ``\\n`` (``\\r`` is dropped).
Host and service names cannot be escaped at all: one with ``;`` or a line
break would forge another command, so such a result is refused.

The sink writes to the Nagios command pipe, reopening it when Nagios
recreates it (the inode changes, or a write hits a pipe with no reader).
While the pipe is missing or has no reader, lines wait in a bounded queue.
A regular file at that path is appended to, as the C ``nsca`` does
(handy for tests), with one warning.
"""

from __future__ import annotations

import collections
import errno
import logging
import os
import stat
import threading
from collections.abc import Iterable
from pathlib import Path

from nsca.errors import FieldError
from nsca.result import CheckResult, to_bytes, unsafe_name
from vigil.drop_log import printable

log = logging.getLogger(__name__)

def escape_output(text: str) -> str:
    return text.replace("\\", "\\\\").replace("\r", "").replace("\n", "\\n")


def format_command(result: CheckResult, timestamp: int) -> str:
    """One ``[time] PROCESS_..._CHECK_RESULT;...`` line, with its newline.

    Raises :class:`FieldError` for a name that would forge a command: this is
    the last door before Nagios, whatever the path the result took.
    """
    why = unsafe_name(result)
    if why:
        raise FieldError(why)
    host, out = result.host, escape_output(result.output)
    if result.service is None:
        return f"[{timestamp}] PROCESS_HOST_CHECK_RESULT;{host};{result.status};{out}\n"
    svc = result.service
    return f"[{timestamp}] PROCESS_SERVICE_CHECK_RESULT;{host};{svc};{result.status};{out}\n"


class CommandFileSink:
    """Writes command lines to the Nagios command file; thread-safe."""

    def __init__(self, path: Path, *, alternate: Path | None = None,
                 max_pending: int = 100_000) -> None:
        self.path = Path(path)
        self.alternate = alternate
        self.max_pending = max_pending
        self._lock = threading.Lock()
        self._fd: int | None = None
        self._ino: tuple[int, int] | None = None
        self._pending: collections.deque[str] = collections.deque()
        self._problem: str | None = None
        self.dropped = 0
        self.refused = 0
        self.written = 0

    # -- opening ---------------------------------------------------------
    def _close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
        self._fd = None
        self._ino = None

    def _report(self, problem: str | None) -> None:
        if problem != self._problem:
            if problem:
                log.error("command file %s: %s; %d lines waiting", self.path, problem,
                          len(self._pending))
            else:
                log.info("command file %s: writable again", self.path)
            self._problem = problem

    def _open(self) -> bool:
        try:
            st = os.stat(self.path)
        except FileNotFoundError:
            self._close()
            if self.alternate is not None:
                return self._open_alternate("is missing (Nagios not running?)")
            self._report("is missing (Nagios not running?)")
            return False
        ident = (st.st_dev, st.st_ino)
        if self._fd is not None and ident == self._ino:
            return True
        self._close()
        if stat.S_ISFIFO(st.st_mode):
            try:
                fd = os.open(self.path, os.O_WRONLY | os.O_NONBLOCK)
            except OSError as exc:
                if exc.errno == errno.ENXIO:
                    self._report("is a pipe nobody reads (Nagios not running?)")
                else:
                    self._report(f"cannot be opened: {exc.strerror}")
                return False
            os.set_blocking(fd, True)
        elif stat.S_ISREG(st.st_mode):
            if self._problem != "regular":
                log.warning("command file %s is not a pipe; appending to it as a regular file",
                            self.path)
            fd = os.open(self.path, os.O_WRONLY | os.O_APPEND)
            self._problem = "regular"
        else:
            self._report("is neither a pipe nor a regular file")
            return False
        self._fd, self._ino = fd, ident
        if self._problem != "regular":
            self._report(None)
        return True

    def _open_alternate(self, why: str) -> bool:
        assert self.alternate is not None
        self._report(f"{why}; writing to the alternate dump file {self.alternate}")
        self._fd = os.open(self.alternate, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o640)
        self._ino = None  # re-check the real path on every write
        return True

    # -- writing ---------------------------------------------------------
    def put_lines(self, lines: Iterable[str]) -> None:
        with self._lock:
            self._pending.extend(lines)
            overflow = len(self._pending) - self.max_pending
            if overflow > 0:
                for _ in range(overflow):
                    self._pending.popleft()
                self.dropped += overflow
                log.error("command file %s: queue full, dropped the %d oldest lines",
                          self.path, overflow)
            self._flush_locked()

    def put(self, items: Iterable[tuple[CheckResult, int]]) -> None:
        lines = []
        for result, ts in items:
            try:
                lines.append(format_command(result, ts))
            except FieldError as exc:
                self.refused += 1
                log.warning("refused result for %s: %s", printable(result.host), exc)
        self.put_lines(lines)

    def flush(self) -> bool:
        with self._lock:
            return self._flush_locked()

    def _flush_locked(self) -> bool:
        while self._pending:
            if not self._open():
                return False
            written = self._write_opened(to_bytes("".join(self._pending)))
            if written is None:
                continue
            if not written:
                return False
            self.written += len(self._pending)
            self._pending.clear()
            if self._ino is None:  # alternate dump file: re-check next time
                self._close()
        return True

    def _write_opened(self, data: bytes) -> bool | None:
        """Write ``data`` to the file open now: True when written; None when the
        reader closed the pipe (Nagios restarted: open it again and retry); False
        when the write failed (closed and reported)."""
        assert self._fd is not None
        view = memoryview(data)
        try:
            while view:
                n = os.write(self._fd, view)
                view = view[n:]
        except BrokenPipeError:
            log.info("command file %s: pipe closed by the reader; reopening", self.path)
            self._close()
            return None
        except OSError as exc:
            self._close()
            self._report(f"write failed: {exc.strerror}")
            return False
        return True

    def try_write(self, lines: list[str]) -> bool:
        """Write now or not at all (nothing is queued): for the relay, which retries."""
        data = to_bytes("".join(lines))
        with self._lock:
            if self._pending and not self._flush_locked():
                return False
            for _attempt in range(2):
                if not self._open():
                    return False
                written = self._write_opened(data)
                if written is None:
                    continue
                if written:
                    self.written += len(lines)
                return written
            return False

    @property
    def problem(self) -> str:
        return self._problem or "unknown problem"

    @property
    def pending(self) -> int:
        return len(self._pending)

    def close(self) -> None:
        with self._lock:
            self._flush_locked()
            self._close()
