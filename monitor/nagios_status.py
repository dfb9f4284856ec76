"""A small reader of Nagios' ``status.dat``: blocks of ``key=value`` lines.

pynag has one (``pynag.Parsers.status``); this one is twenty lines, has no
import-time noise and returns plain dicts, which is all the tests and
``vigil monitor`` need.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class Status:
    blocks: list[tuple[str, dict[str, str]]] = field(default_factory=list)

    def of(self, kind: str) -> list[dict[str, str]]:
        return [b for k, b in self.blocks if k == kind]

    def host(self, name: str) -> dict[str, str] | None:
        return next((b for b in self.of("hoststatus") if b.get("host_name") == name), None)

    def service(self, host: str, description: str) -> dict[str, str] | None:
        return next((b for b in self.of("servicestatus") if b.get("host_name") == host
                     and b.get("service_description") == description), None)

    def services_of(self, host: str) -> list[dict[str, str]]:
        return [b for b in self.of("servicestatus") if b.get("host_name") == host]


def parse(text: str) -> Status:
    status = Status()
    current: dict[str, str] | None = None
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if current is None and line.endswith("{"):
            current = {}
            status.blocks.append((line[:-1].strip(), current))
        elif line == "}":
            current = None
        elif current is not None:
            key, _, value = line.partition("=")
            current[key] = value
    return status


def read(path: str | Path) -> Status:
    """The status file now; an empty :class:`Status` while Nagios has not written one."""
    try:
        return parse(Path(path).read_text(encoding="utf-8", errors="replace"))
    except FileNotFoundError:
        return Status()
