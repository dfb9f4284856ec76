"""Where the relay delivers: a central NSCA server, or the local Nagios command file.

(The NSCA-NG destination lives in :mod:`nsca.ng`.) A destination has a
``name`` (its cursor file), a ``batch_size`` (results per connection) and
``send(records)``, which delivers all of them or raises
:class:`nsca.errors.NSCAError`; an error with a ``delivered`` count says how
many were acknowledged before it broke.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Protocol

from nsca import client
from nsca.commandfile import CommandFileSink, format_command
from nsca.errors import ConnectionFailed, FieldError
from nsca.spool import Record
from vigil.config import Secret
from vigil.drop_log import printable

log = logging.getLogger(__name__)


class Destination(Protocol):
    name: str
    batch_size: int

    def send(self, records: Sequence[Record]) -> None:
        """Deliver all of them or raise :class:`NSCAError`."""


class NSCADestination:
    """A central NSCA server (C ``nsca`` or Vigil)."""

    def __init__(self, host: str, port: int, *, password: str | Secret = "", method: int = 1,
                 timeout: float = 10.0, batch_size: int = 20, packet_version: int = 3) -> None:
        self.host, self.port = host, port
        self.name = f"nsca-{host}-{port}"
        self.batch_size = batch_size
        self._password = password
        self.method = method
        self.timeout = timeout
        self.packet_version = packet_version

    def send(self, records: Sequence[Record]) -> None:
        client.send_results([r.result for r in records], host=self.host, port=self.port,
                            password=self._password, method=self.method,
                            timeout=self.timeout, packet_version=self.packet_version,
                            result_ids=[r.rid for r in records])

    def __str__(self) -> str:
        return f"{self.host}:{self.port}"


class CommandFileDestination:
    """The local Nagios command file, as one more destination (central role, demo)."""

    name = "command-file"

    def __init__(self, path: Path, *, batch_size: int = 500) -> None:
        self.sink = CommandFileSink(Path(path))
        self.batch_size = batch_size

    def __str__(self) -> str:
        return f"command file {self.sink.path}"

    def send(self, records: Sequence[Record]) -> None:
        lines = []
        for rec in records:
            r = rec.result
            try:
                lines.append(format_command(r, int(r.timestamp or time.time())))
            except FieldError as exc:
                log.error("%s: result for %s dropped: %s", self, printable(r.host), exc)
        if lines and not self.sink.try_write(lines):
            raise ConnectionFailed(f"{self}: not writable ({self.sink.problem})")
