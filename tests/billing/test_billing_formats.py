"""Off-peak periods, translation rules and Cisco time stamps (pure functions)."""

from __future__ import annotations

import datetime as dt

import pytest

from billing import h323time, offpeak
from billing.translation import TranslationError, translate

MON_NOON = dt.datetime(2006, 9, 4, 12, 0)  # a Monday
MON_2030 = dt.datetime(2006, 9, 4, 20, 30)
SAT_NOON = dt.datetime(2006, 9, 9, 12, 0)


def test_off_peak_evenings_and_weekends():
    m = offpeak.parse("wd {mon-fri} hr {7pm-7am}, wd {sat sun}")
    assert m is not None
    assert not m(MON_NOON)
    assert m(MON_2030)
    assert m(SAT_NOON)
    assert m(dt.datetime(2006, 9, 5, 6, 59))
    assert not m(dt.datetime(2006, 9, 5, 7, 0))


def test_off_peak_empty_and_bad():
    assert offpeak.parse("") is None
    for bad in ("wd {funday}", "hr {25}", "zz {1}", "hr {1", "wd {mon} junk"):
        with pytest.raises(offpeak.PeriodError):
            offpeak.parse(bad)


def test_translation_rules_as_in_the_source():
    assert translate("s/^4412//", "441259322891834") == "59322891834"
    assert translate("s/^4412//", "59322891834") == "59322891834"
    assert translate("s/^00//; s/^(\\d{3})#//", "00123#420211") == "420211"
    assert translate("s/^34562#(\\d+)$/$1/", "34562#4202111222") == "4202111222"
    assert translate("", "123") == "123"
    for bad in ("^4412", "s/(/x/", "y/a/b/"):
        with pytest.raises(TranslationError):
            translate(bad, "1")


def test_cisco_time_stamps():
    t, trusted = h323time.parse("00:02:05.111 EDT Mon Sep 04 2006")
    assert t == dt.datetime(2006, 9, 4, 4, 2, 5, 111000) and trusted
    t2, trusted2 = h323time.parse("*12:00:00.000 UTC Sat Jan 01 2000")
    assert t2 == dt.datetime(2000, 1, 1, 12) and not trusted2
    for bad in ("", "yesterday", "00:02:05.111 XYZ Mon Sep 04 2006",
                "25:02:05.111 EDT Mon Sep 04 2006", "00:02:05 EDT Mon Foo 04 2006"):
        with pytest.raises(h323time.TimeFormatError):
            h323time.parse(bad)
