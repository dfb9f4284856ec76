"""Results that could not be sent wait here, one atomic file per pass, and leave in order.

A file is named ``<sequence>.json`` with a zero-padded sequence number, so
the folder's sorted listing is the order of the passes. Files are written
with :func:`vigil.statefile.write_bytes_atomic` (temp file, fsync, rename): a
crash leaves either the whole pass or nothing. A file that does not parse is
moved aside to ``*.corrupt`` and reported, never sent half-understood.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
from collections.abc import Iterator, Sequence
from pathlib import Path

from nsca.result import CheckResult
from vigil.statefile import locked, write_bytes_atomic

log = logging.getLogger(__name__)

_NAME = re.compile(r"^(\d{12})\.json$")


class Spool:
    def __init__(self, folder: Path, max_passes: int = 1440) -> None:
        self.folder = Path(folder)
        self.max_passes = max_passes

    def _files(self) -> list[Path]:
        try:
            names = os.listdir(self.folder)
        except FileNotFoundError:
            return []
        return [self.folder / n for n in sorted(names) if _NAME.match(n)]

    def __len__(self) -> int:
        return len(self._files())

    def pending_results(self) -> int:
        return sum(len(batch) for _, batch in self.batches())

    def put(self, results: Sequence[CheckResult]) -> Path:
        """Append one pass; drop the oldest passes beyond ``max_passes``."""
        self.folder.mkdir(parents=True, exist_ok=True)
        with locked(self.folder / "spool"):
            files = self._files()
            last = _NAME.match(files[-1].name) if files else None  # _files() kept only matches
            seq = int(last.group(1)) + 1 if last else 1
            target = self.folder / f"{seq:012d}.json"
            data = json.dumps([_encode(r) for r in results], separators=(",", ":"))
            write_bytes_atomic(target, data.encode("utf-8"), mode=0o600)
            excess = len(files) + 1 - self.max_passes
            for old in files[:max(0, excess)]:
                log.warning("monitor spool %s full (%d passes): dropping the oldest pass %s",
                            self.folder, self.max_passes, old.name)
                with contextlib.suppress(FileNotFoundError):
                    old.unlink()
        return target

    def batches(self) -> Iterator[tuple[Path, list[CheckResult]]]:
        """Spooled passes, oldest first; corrupt files are moved aside."""
        for f in self._files():
            try:
                raw = json.loads(f.read_bytes())
                batch = [_decode(item) for item in raw]
            except FileNotFoundError:
                continue
            except (ValueError, TypeError, KeyError, UnicodeDecodeError) as exc:
                aside = f.with_name(f.name + ".corrupt")
                log.error("monitor spool: %s is corrupt (%s); moved to %s", f, exc, aside.name)
                with contextlib.suppress(FileNotFoundError):
                    os.replace(f, aside)
                continue
            yield f, batch

    def reject(self, f: Path, why: str) -> None:
        aside = f.with_name(f.name + ".rejected")
        log.error("monitor spool: the server cannot take %s (%s); moved to %s",
                  f, why, aside.name)
        with contextlib.suppress(FileNotFoundError):
            os.replace(f, aside)

    def done(self, f: Path) -> None:
        with contextlib.suppress(FileNotFoundError):
            f.unlink()


def _encode(r: CheckResult) -> dict[str, object]:
    return {"host": r.host, "service": r.service, "status": r.status, "output": r.output,
            "timestamp": r.timestamp}


def _decode(item: dict[str, object]) -> CheckResult:
    service = item["service"]
    ts = item.get("timestamp")
    return CheckResult(host=str(item["host"]), service=None if service is None else str(service),
                       status=int(item["status"]),  # type: ignore[call-overload]
                       output=str(item["output"]),
                       timestamp=None if ts is None else float(ts))  # type: ignore[arg-type]
