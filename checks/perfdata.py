"""Performance data as a value object: ``'label'=value[UOM];warn;crit;min;max``."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

from checks.range import Range

# Units the guidelines know; anything else is dropped to keep graphers sane.
UNITS = frozenset({"", "s", "ms", "us", "%", "B", "KB", "MB", "GB", "TB", "c"})
_BAD_LABEL = re.compile(r"['=|\s]+")


def clean_label(label: str) -> str:
    """Labels never contain ``'``, ``=``, ``|`` or blanks (program or server names may)."""
    cleaned = _BAD_LABEL.sub("_", label).strip("_")
    return cleaned or "value"


def format_number(value: float) -> str:
    if isinstance(value, bool):
        return str(int(value))
    if isinstance(value, int):
        return str(value)
    if math.isnan(value) or math.isinf(value):
        return "U"  # the guideline's "unknown value"
    if value == int(value) and abs(value) < 1e15:
        return str(int(value))
    return f"{value:.6g}" if abs(value) >= 1e-4 else f"{value:.6e}"


@dataclass(frozen=True)
class Perfdata:
    label: str
    value: float
    uom: str = ""
    warn: Range | None = None
    crit: Range | None = None
    min: float | None = None
    max: float | None = None

    def __post_init__(self) -> None:
        if self.uom not in UNITS:
            raise ValueError(f"unit {self.uom!r} is not one of the guideline's units")
        object.__setattr__(self, "label", clean_label(self.label))

    def __str__(self) -> str:
        fields = [
            f"'{self.label}'={format_number(self.value)}{self.uom}",
            _range_text(self.warn),
            _range_text(self.crit),
            "" if self.min is None else format_number(self.min),
            "" if self.max is None else format_number(self.max),
        ]
        while fields and fields[-1] == "":
            fields.pop()
        return ";".join(fields)


def _range_text(r: Range | None) -> str:
    if r is None or r.is_unset:
        return ""
    return str(r)
