"""A passive check result, the unit everything in ``nsca`` moves around."""

from __future__ import annotations

from dataclasses import dataclass

STATES = ("OK", "WARNING", "CRITICAL", "UNKNOWN")


@dataclass(frozen=True)
class CheckResult:
    """One passive result; ``service`` None is a host check."""

    host: str
    service: str | None
    status: int
    output: str
    timestamp: float | None = None

    def __post_init__(self) -> None:
        if not 0 <= self.status <= 3:
            raise ValueError(f"status {self.status} is not 0..3 (OK, WARNING, CRITICAL, UNKNOWN)")
        if not self.host:
            raise ValueError("host name is empty")

    @property
    def is_host_check(self) -> bool:
        return self.service is None
