"""How a pass's results reach the configuration server, and the outbox that never loses them.

:class:`Outbox` writes every pass to the :class:`~monitor.spool.Spool` first
and then sends the spool oldest first, removing each pass once the NSCA
server took it. A pass that cannot be sent stays on disk and goes out, in
order, at the next pass that reaches the server; nothing acknowledged by the
scheduler is lost to a crash or a restart in between.

Two senders: :class:`VigilNSCASender` (``nsca.client.send_results``, the
default) and :class:`SendNSCASender` (Debian's ``send_nsca``; the password
goes in a mode-0600 config file, never on its command line).
"""

from __future__ import annotations

import logging
import os
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from monitor.spool import Spool
from nsca.result import CheckResult
from vigil.config import Secret
from vigil.statefile import write_bytes_atomic

log = logging.getLogger(__name__)


class SendError(Exception):
    """The results did not reach the NSCA server; they stay in the spool.

    ``permanent`` marks a pass the server can never take (a name too long for
    NSCA): retrying it would block every later pass, so it is set aside.
    """

    def __init__(self, message: str, *, permanent: bool = False) -> None:
        super().__init__(message)
        self.permanent = permanent


class Sender(Protocol):
    def send(self, results: Sequence[CheckResult]) -> None: ...

    def describe(self) -> str: ...


@dataclass
class VigilNSCASender:
    host: str
    port: int
    password: Secret
    method: int = 1
    timeout: float = 10.0
    packet_version: int = 3

    def send(self, results: Sequence[CheckResult]) -> None:
        try:
            from nsca.client import send_results
            from nsca.errors import FieldError, NSCAError
        except ImportError as exc:
            raise SendError(f"the NSCA client is not installed ({exc})") from exc
        try:
            sent = send_results(results, host=self.host, port=self.port,
                                password=self.password.reveal(), method=self.method,
                                timeout=self.timeout, packet_version=self.packet_version)
        except FieldError as exc:
            raise SendError(f"NSCA {self.host}:{self.port}: {exc}", permanent=True) from exc
        except NSCAError as exc:
            raise SendError(f"NSCA {self.host}:{self.port}: {exc}") from exc
        except OSError as exc:
            raise SendError(f"NSCA {self.host}:{self.port}: {exc}") from exc
        if sent != len(results):
            raise SendError(f"NSCA {self.host}:{self.port}: sent {sent} of {len(results)}")

    def describe(self) -> str:
        return f"nsca://{self.host}:{self.port}"


@dataclass
class SendNSCASender:
    """Debian ``send_nsca``; proves Vigil's scheduler interoperates with stock NSCA."""

    binary: str
    host: str
    port: int
    password: Secret
    method: int
    config_dir: Path
    timeout: float = 10.0

    def _config_file(self) -> Path:
        path = Path(self.config_dir) / "send_nsca.cfg"
        text = f"password={self.password.reveal()}\nencryption_method={self.method}\n"
        if not path.exists() or path.read_text() != text:
            write_bytes_atomic(path, text.encode(), mode=0o600)
        return path

    def send(self, results: Sequence[CheckResult]) -> None:
        lines = []
        for r in results:
            fields = [r.host] + ([] if r.service is None else [r.service])
            lines.append("\t".join([*fields, str(r.status), r.output]))
        data = ("\x17".join(lines) + "\x17").encode("utf-8")
        argv = [self.binary, "-H", self.host, "-p", str(self.port),
                "-to", str(int(max(1, self.timeout))), "-c", str(self._config_file())]
        try:
            proc = subprocess.run(argv, input=data, capture_output=True,
                                  timeout=self.timeout + 5, check=False)
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise SendError(f"send_nsca: {exc}") from exc
        if proc.returncode != 0:
            why = (proc.stdout + proc.stderr).decode("utf-8", "replace").strip()
            raise SendError(f"send_nsca to {self.host}:{self.port} failed "
                            f"(exit {proc.returncode}): {why}")

    def describe(self) -> str:
        return f"send_nsca://{self.host}:{self.port}"


@dataclass
class Delivery:
    sent: int = 0
    passes_sent: int = 0
    waiting_passes: int = 0
    error: str | None = None


class Outbox:
    def __init__(self, sender: Sender, spool: Spool) -> None:
        self.sender = sender
        self.spool = spool
        self._failing = False

    def deliver(self, results: Sequence[CheckResult]) -> Delivery:
        if results:
            self.spool.put(results)
        return self.flush()

    def flush(self) -> Delivery:
        report = Delivery()
        for path, batch in self.spool.batches():
            try:
                if batch:
                    self.sender.send(batch)
            except SendError as exc:
                if exc.permanent:
                    self.spool.reject(path, str(exc))
                    continue
                report.error = str(exc)
                break
            self.spool.done(path)
            report.sent += len(batch)
            report.passes_sent += 1
        report.waiting_passes = len(self.spool)
        # Log the change of state, not every failing minute.
        if report.error and not self._failing:
            log.warning("monitor: cannot send to %s (%s); %d pass(es) wait in %s",
                        self.sender.describe(), report.error, report.waiting_passes,
                        self.spool.folder)
        elif report.error:
            log.debug("monitor: still cannot send: %s", report.error)
        elif self._failing:
            log.warning("monitor: %s reachable again; sent %d spooled result(s)",
                        self.sender.describe(), report.sent)
        self._failing = report.error is not None
        return report


def spool_is_private(folder: Path) -> None:
    """The spool holds host names and outputs; keep it to the scheduler's user."""
    folder.mkdir(parents=True, exist_ok=True)
    os.chmod(folder, 0o700)
