"""Cisco/NexTone time stamps: ``00:02:05.111 EDT Mon Sep 04 2006``.

A leading ``*`` (clock not synchronised) or ``.`` (synchronised by NTP once,
now unsure) is accepted and reported. Unknown time-zone abbreviations are
refused rather than guessed.
"""

from __future__ import annotations

import datetime as dt
import re

_RX = re.compile(
    r"^\s*([*.]?)(\d{1,2}):(\d{2}):(\d{2})(?:\.(\d{1,6}))?\s+([A-Za-z]{1,5}|[+-]\d{4})\s+"
    r"(?:[A-Za-z]{3}\s+)?([A-Za-z]{3})\s+(\d{1,2})\s+(\d{4})\s*$")
_MONTHS = {m: i + 1 for i, m in enumerate(
    ["jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"])}
_ZONES = {"UTC": 0, "GMT": 0, "UT": 0, "Z": 0, "EST": -5, "EDT": -4, "CST": -6, "CDT": -5,
          "MST": -7, "MDT": -6, "PST": -8, "PDT": -7, "CET": 1, "CEST": 2, "EET": 2,
          "EEST": 3, "MSK": 3, "WET": 0, "WEST": 1, "BST": 1, "IST": 5.5, "JST": 9,
          "HKT": 8, "SGT": 8, "AEST": 10, "AEDT": 11}


class TimeFormatError(ValueError):
    """A time stamp that is not in the Cisco format."""


def parse(text: str) -> tuple[dt.datetime, bool]:
    """UTC naive datetime and whether the gateway said its clock is trustworthy."""
    m = _RX.match(text or "")
    if not m:
        raise TimeFormatError(f"{text!r} is not a time like '00:02:05.111 EDT Mon Sep 04 2006'")
    flag, hh, mm, ss, frac, zone, mon, day, year = m.groups()
    month = _MONTHS.get(mon.lower())
    if month is None:
        raise TimeFormatError(f"{text!r}: unknown month {mon!r}")
    if zone[0] in "+-":
        offset = (1 if zone[0] == "+" else -1) * (int(zone[1:3]) + int(zone[3:5]) / 60)
    elif zone.upper() in _ZONES:
        offset = _ZONES[zone.upper()]
    else:
        raise TimeFormatError(f"{text!r}: unknown time zone {zone!r}")
    try:
        local = dt.datetime(int(year), month, int(day), int(hh), int(mm), int(ss),
                            int((frac or "0").ljust(6, "0")))
    except ValueError as exc:
        raise TimeFormatError(f"{text!r}: {exc}") from None
    return local - dt.timedelta(hours=offset), flag == ""
