"""Off-peak periods in the source's notation (Perl Time::Period).

A period is a comma-separated list of sub-periods; the moment is off-peak
if any sub-period matches. A sub-period is a list of ``scale {ranges}``
terms that must all match, e.g. ``wd {mon-fri} hr {7pm-7am}, wd {sat sun}``.
Scales: ``yr``, ``mo`` (jan-dec or 1-12), ``wk`` (1-6, week of month),
``yd`` (1-366), ``md`` (1-31), ``wd`` (su-sa or 1-7, Sunday is 1), ``hr``
(0-23, 12am-11pm), ``min`` (0-59), ``sec`` (0-59). A range ``a-b`` wraps
around (``hr {10pm-6am}``) and includes both ends except for ``hr``,
``min`` and ``sec``, where ``a-b`` means from the start of ``a`` up to the
start of ``b`` as in Time::Period.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable

_WD = {"su": 1, "mo": 2, "tu": 3, "we": 4, "th": 5, "fr": 6, "sa": 7}
_MO = {m: i + 1 for i, m in enumerate(
    ["jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"])}
_TERM = re.compile(r"([a-z]+)\s*\{([^}]*)\}")


class PeriodError(ValueError):
    """An off-peak period that does not parse."""


def _hour(tok: str) -> int:
    m = re.fullmatch(r"(\d{1,2})(am|pm)?", tok)
    if not m:
        raise PeriodError(f"bad hour {tok!r}")
    h = int(m.group(1))
    if m.group(2):
        if not 1 <= h <= 12:
            raise PeriodError(f"bad hour {tok!r}")
        h = h % 12 + (12 if m.group(2) == "pm" else 0)
    if not 0 <= h <= 23:
        raise PeriodError(f"bad hour {tok!r}")
    return h


def _named(table: dict[str, int], lo: int, hi: int) -> Callable[[str], int]:
    def conv(tok: str) -> int:
        key = tok[:2] if table is _WD else tok[:3]
        if key in table and not tok.isdigit():
            return table[key]
        if tok.isdigit() and lo <= int(tok) <= hi:
            return int(tok)
        raise PeriodError(f"bad value {tok!r}")
    return conv


def _num(lo: int, hi: int) -> Callable[[str], int]:
    def conv(tok: str) -> int:
        if tok.isdigit() and lo <= int(tok) <= hi:
            return int(tok)
        raise PeriodError(f"bad value {tok!r} (allowed {lo}-{hi})")
    return conv


# scale -> (converter, value of a datetime, end-exclusive ranges?)
_SCALES: dict[str, tuple[Callable[[str], int], Callable[[dt.datetime], int], bool]] = {
    "yr": (_num(1970, 2999), lambda t: t.year, False),
    "mo": (_named(_MO, 1, 12), lambda t: t.month, False),
    "wk": (_num(1, 6), lambda t: (t.day - 1 + t.replace(day=1).isoweekday() % 7) // 7 + 1, False),
    "yd": (_num(1, 366), lambda t: t.timetuple().tm_yday, False),
    "md": (_num(1, 31), lambda t: t.day, False),
    "wd": (_named(_WD, 1, 7), lambda t: t.isoweekday() % 7 + 1, False),
    "hr": (_hour, lambda t: t.hour, True),
    "min": (_num(0, 59), lambda t: t.minute, True),
    "sec": (_num(0, 59), lambda t: t.second, True),
}
_ALIASES = {"year": "yr", "month": "mo", "week": "wk", "yday": "yd", "mday": "md",
            "wday": "wd", "hour": "hr", "minute": "min", "second": "sec"}

Matcher = Callable[[dt.datetime], bool]


def _span(a: int, b: int, exclusive: bool) -> Callable[[int], bool]:
    """The test for ``a-b``; a > b wraps around (``wd {fri-mon}``, ``hr {22-6}``)."""
    if exclusive:
        return (lambda v: a <= v < b) if a <= b else (lambda v: v >= a or v < b)
    return (lambda v: a <= v <= b) if a <= b else (lambda v: v >= a or v <= b)


def _equal(x: int) -> Callable[[int], bool]:
    return lambda v: v == x


def _range_matcher(scale: str, spec: str) -> Matcher:
    conv, value, exclusive = _SCALES[scale]
    tests: list[Callable[[int], bool]] = []
    for tok in spec.split():
        if "-" in tok:
            a_s, b_s = tok.split("-", 1)
            tests.append(_span(conv(a_s), conv(b_s), exclusive))
        else:
            tests.append(_equal(conv(tok)))
    if not tests:
        raise PeriodError(f"empty range for {scale}")
    return lambda t: any(test(value(t)) for test in tests)


def parse(period: str) -> Matcher | None:
    """A function telling whether a moment is off-peak; None for an empty period."""
    period = period.strip().lower()
    if not period:
        return None
    subs: list[list[Matcher]] = []
    for sub in period.split(","):
        sub = sub.strip()
        terms: list[Matcher] = []
        pos = 0
        for m in _TERM.finditer(sub):
            if sub[pos:m.start()].strip():
                raise PeriodError(f"cannot read {sub[pos:m.start()].strip()!r} in {period!r}")
            scale = _ALIASES.get(m.group(1), m.group(1))
            if scale not in _SCALES:
                raise PeriodError(f"unknown scale {m.group(1)!r} in {period!r}")
            terms.append(_range_matcher(scale, m.group(2)))
            pos = m.end()
        if sub[pos:].strip() or not terms:
            raise PeriodError(f"cannot read {sub!r}")
        subs.append(terms)
    return lambda t: any(all(term(t) for term in terms) for terms in subs)
