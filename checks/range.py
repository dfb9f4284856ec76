"""The one threshold type: Monitoring Plugins ranges ``[@][start:][end]``.

Built on :class:`nagiosplugin.Range` (its parsing and ``match`` follow the
guidelines); this adds numbers written with exponents, a clear
:class:`ThresholdError` naming the text that was wrong, and an argparse
``type`` so a bad ``-w``/``-c`` is a usage error (exit 3).

Guideline table (alert when the value is ...)::

    10      < 0 or > 10        10:     < 10
    ~:10    > 10               10:20   < 10 or > 20
    @10:20  >= 10 and <= 20
"""

from __future__ import annotations

import math

import nagiosplugin


class ThresholdError(ValueError):
    """A range written wrong; the message quotes it and says why."""


class Range(nagiosplugin.Range):
    """``value in r`` is True when the value does *not* alert."""

    @staticmethod
    def _parse_atom(atom: str, default: float) -> float:
        if atom == "":
            return default
        value: float
        try:
            value = int(atom)
        except ValueError:
            try:
                value = float(atom)  # 1.5, 1e3
            except ValueError:
                raise ValueError(f"{atom!r} is not a number") from None
        if math.isnan(value) or math.isinf(value):
            raise ValueError(f"{atom!r} is not a finite number")
        return value

    @property
    def is_unset(self) -> bool:
        return not self.invert and self.start == -math.inf and self.end == math.inf

    def alerts(self, value: float) -> bool:
        return not self.match(value)


def parse_range(text: str | None) -> Range:
    """A :class:`Range` from its text; empty or None is the range that never alerts."""
    spec = (text or "").strip()
    if not spec:
        return Range("~:")
    body = spec[1:] if spec.startswith("@") else spec
    if body.count(":") > 1 or body in ("", "~", ":") or body.startswith("~") and not \
            body.startswith("~:"):
        raise ThresholdError(f"bad threshold {spec!r}: use [@][start:][end], "
                             "e.g. 10, 10:, ~:10, 10:20, @10:20")
    try:
        return Range(spec)
    except ValueError as exc:
        raise ThresholdError(f"bad threshold {spec!r}: {exc}") from None


def range_type(text: str) -> Range:
    """argparse ``type=`` for ``-w``/``-c``: a bad range becomes a usage error."""
    import argparse

    try:
        return parse_range(text)
    except ThresholdError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
