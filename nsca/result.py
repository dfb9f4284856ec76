"""A passive check result, the unit everything in ``nsca`` moves around."""

from __future__ import annotations

from dataclasses import dataclass

STATES = ("OK", "WARNING", "CRITICAL", "UNKNOWN")
# The wire carries a signed 16-bit code; the C nsca writes any of them through
# (Nagios shows a code outside 0..3 as UNKNOWN), and so do we.
STATUS_MIN, STATUS_MAX = -32768, 32767


def to_bytes(text: str) -> bytes:
    """Text back to the exact bytes it was read from (see :func:`from_bytes`)."""
    try:
        return text.encode("utf-8", "surrogateescape")
    except UnicodeEncodeError:
        # A lone surrogate that no bytes produced (made in code, not read): no
        # exact bytes exist, and a replacement mark beats a crash.
        return text.encode("utf-8", "replace")


def from_bytes(raw: bytes) -> str:
    """Bytes as text without losing any: UTF-8, other bytes kept as lone surrogates.

    The C programs pass bytes through untouched; so do we. A Latin-1 host name
    or an output cut mid-character leaves byte for byte as it came in.
    """
    return raw.decode("utf-8", "surrogateescape")


@dataclass(frozen=True)
class CheckResult:
    """One passive result; ``service`` None is a host check."""

    host: str
    service: str | None
    status: int
    output: str
    timestamp: float | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.status, int) or not STATUS_MIN <= self.status <= STATUS_MAX:
            raise ValueError(f"status {self.status!r} is not a 16-bit code "
                             f"({STATUS_MIN}..{STATUS_MAX}; 0..3 are OK..UNKNOWN)")
        if not self.host:
            raise ValueError("host name is empty")

    @property
    def is_host_check(self) -> bool:
        return self.service is None


_FORGING = set(";\n\r\0")


def unsafe_name(result: CheckResult) -> str | None:
    """Why this result's host or service name could forge a Nagios command, or None.

    A name is a field of the external command line: a ``;`` starts the next
    field and a line break the next command, and neither can be escaped
    there. Such a result is refused wherever it is met.
    """
    for what, value in (("host name", result.host), ("service description", result.service)):
        if value is not None and _FORGING & set(value):
            return f"{what} contains ';' or a line break"
    return None
