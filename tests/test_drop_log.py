"""Drop summaries: bounded lines, per source and cause, wire text escaped.

NSCA's wording here; RADIUS's (told at once, counted sources) in
tests/billing/test_billing_radius_decode.py.
"""

from __future__ import annotations

import logging

from vigil.drop_log import NSCA_STYLE, OTHERS, DropLog, printable


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_one_line_per_source_per_interval(caplog) -> None:
    clock = Clock()
    drops = DropLog(logging.getLogger("t.drops"), interval=10, clock=clock, style=NSCA_STYLE)
    with caplog.at_level(logging.WARNING, logger="t.drops"):
        for i in range(20_000):
            drops.note("10.1.2.3", "BadCRC" if i % 3 else "forged name", "web1;db1\n")
            clock.now = i / 2_000  # 10 s in all
        drops.note("10.1.2.4", "no valid packet within 10 s")
        drops.flush()
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) <= 4, lines
    assert sum("from 10.1.2.3 in 10 s: BadCRC" in ln for ln in lines) == 1
    assert all("\n" not in ln for ln in lines)
    assert any("e.g. web1;db1\\x0a" in ln for ln in lines)
    assert drops.totals["BadCRC"] + drops.totals["forged name"] == 20_000


def test_sources_are_capped(caplog) -> None:
    drops = DropLog(logging.getLogger("t.cap"), interval=3600, max_sources=5, style=NSCA_STYLE)
    with caplog.at_level(logging.WARNING, logger="t.cap"):
        for i in range(1000):
            drops.note(f"10.0.{i // 256}.{i % 256}", "BadVersion")
        assert drops.flush() == 6
    assert any(f"from {OTHERS}" in r.getMessage() and "BadVersion 995" in r.getMessage()
               for r in caplog.records)


def test_printable_escapes_controls_and_stray_bytes() -> None:
    assert printable("a\nb\r\x1b[31m") == "a\\x0ab\\x0d\\x1b[31m"
    assert printable(b"h\xe9te".decode("utf-8", "surrogateescape")) == "h\\xe9te"
    assert printable("é ok \\") == "é ok \\\\"
    assert printable("x" * 100, 10) == "x" * 10 + "..."


def test_a_drop_after_a_quiet_spell_shows_at_once_in_either_style(caplog) -> None:
    clock = Clock()
    nsca = DropLog(logging.getLogger("t.quiet.nsca"), interval=10, clock=clock, style=NSCA_STYLE)
    radius = DropLog(logging.getLogger("t.quiet.radius"), interval=10, clock=clock)
    clock.now = 3600.0  # an hour without a drop
    with caplog.at_level(logging.WARNING):
        nsca.note("10.0.0.1", "BadCRC", "x")
        radius.note("10.0.0.2", "unknown_nas", "unknown client\n")
        # the RADIUS interval starts with its first drop: the next one is summed
        radius.note("10.0.0.2", "unknown_nas", "unknown client")
    lines = [r.getMessage() for r in caplog.records]
    assert lines == [
        "dropped 1 from 10.0.0.1 in 3600 s: BadCRC 1; e.g. x",
        "dropped a packet from 10.0.0.2: unknown NAS: unknown client\\x0a "
        "(more are summed every 10 s)",
    ]
    assert not radius.due()
    clock.now += 10
    assert radius.due() and not nsca.due()
    with caplog.at_level(logging.WARNING):
        assert radius.flush() == 1
    assert caplog.records[-1].getMessage() == (
        "dropped 2 packets from 10.0.0.2 in 10 s: 2 unknown NAS (first: unknown client\\x0a)")
