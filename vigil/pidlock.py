"""The one pid-lock: one radcheck, one NSCA relay per spool, one replication repair.

The file holds the owner's pid (as the source's ``/var/run/radcheck.pid``
did) and is also ``flock``-ed while its owner runs. The kernel drops the flock
when its holder dies, however it dies, so a file left by a killed owner is
recognised as stale: its pid no longer runs (or does not hold the flock), and
the newcomer takes it over, saying so in the log. A pid that is alive and
holds the flock means another owner really runs.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import logging
import os
from pathlib import Path

from vigil.processes import pid_alive

log = logging.getLogger(__name__)


class LockError(Exception):
    """The lock cannot be taken; the message says why."""


class LockHeld(LockError):
    def __init__(self, path: Path, pid: int | None, what: str = "process") -> None:
        self.path = path
        self.pid = pid
        who = f"pid {pid}" if pid else "another process"
        super().__init__(f"another {what} is running ({who} holds {path})")


def _read_pid(fd: int) -> int | None:
    os.lseek(fd, 0, os.SEEK_SET)
    text = os.read(fd, 64).decode("ascii", "replace").strip()
    try:
        return int(text.split()[0]) if text else None
    except ValueError:
        return None


class PidLock:
    """``with PidLock(path, what="radcheck"): ...`` or ``acquire()`` / ``release()``.

    ``what`` names the owner in the "another ... is running" message.
    """

    def __init__(self, path: str | os.PathLike[str], what: str = "process") -> None:
        self.path = Path(path)
        self.what = what
        self._fd: int | None = None
        self.took_over_from: int | None = None

    def acquire(self) -> PidLock:
        folder = self.path.parent
        if folder.exists() and not folder.is_dir():
            raise LockError(f"lock folder {folder} exists but is not a folder")
        if not folder.is_dir():
            try:
                folder.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise LockError(f"lock folder {folder} is missing and cannot be created: "
                                f"{exc.strerror or exc}") from exc
            log.warning("lock folder %s was missing; created it", folder)
        try:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        except OSError as exc:
            raise LockError(f"cannot open lock file {self.path}: "
                            f"{exc.strerror or exc}") from exc
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            pid = _read_pid(fd)
            os.close(fd)
            if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                raise LockHeld(self.path, pid, self.what) from None
            raise LockError(f"cannot lock {self.path}: {exc.strerror or exc}") from exc
        old = _read_pid(fd)
        if old is not None and old != os.getpid():
            if pid_alive(old):
                # Alive but without the flock: a pid reused by an unrelated process
                # (a live owner would hold the flock). The file is stale all the same.
                log.warning("lock file %s names pid %d, which runs but does not hold the "
                            "lock (pid reused); taking the lock over", self.path, old)
            else:
                log.warning("stale lock file %s left by pid %d (no longer running); "
                            "taking it over", self.path, old)
            self.took_over_from = old
        os.ftruncate(fd, 0)
        os.lseek(fd, 0, os.SEEK_SET)
        os.write(fd, f"{os.getpid()}\n".encode())
        os.fsync(fd)
        self._fd = fd
        return self

    def release(self) -> None:
        if self._fd is None:
            return
        try:
            if _read_pid(self._fd) == os.getpid():
                with contextlib.suppress(FileNotFoundError):
                    self.path.unlink()
        finally:
            os.close(self._fd)
            self._fd = None

    def __enter__(self) -> PidLock:
        return self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()
