"""Forged Nagios commands: names carrying ';' or a line break never reach a command file.

The path under test is the appliance's: real ``send_nsca`` -> Vigil server
(spool) -> relay -> the real Debian ``nsca`` central writing its command
file. A spool written by an older version may already hold such a name: the
relay refuses it again, and the command-file writer is the last door.
"""

from __future__ import annotations

import logging
import os
import re
import threading
from pathlib import Path

import pytest

from nsca.commandfile import CommandFileSink, format_command
from nsca.errors import FieldError
from nsca.relay import NSCADestination, Relay
from nsca.result import CheckResult
from nsca.server import SpoolSink
from nsca.spool import Record, SpoolWriter
from nsca.testing import run_send_nsca, wait_lines
from vigil.testing.wait import wait_until

COMMAND = re.compile(r"^\[\d+\] PROCESS_(SERVICE|HOST)_CHECK_RESULT;[^;\n]+;")

FORGED = [  # (host, service) as an attacker would send them
    ("web1", "HTTP;0;all fine\n[1700000000] DISABLE_NOTIFICATIONS"),
    ("web1;db1", "HTTP"),
    ("web1", "HTTP\r[1700000000] DISABLE_NOTIFICATIONS"),
    ("web1\n[1700000000] DISABLE_NOTIFICATIONS;x", None),
]


def _send_nsca_input(host: str, service: str | None, code: int, output: str) -> str:
    fields = [host] + ([service] if service is not None else []) + [str(code), output]
    return "\t".join(fields) + "\x17"


def test_forged_names_through_server_and_relay_to_c_nsca(tmp_path: Path, vigil_server,
                                                          real_nsca, caplog) -> None:
    central = real_nsca(password="pw")
    spool = tmp_path / "spool"
    writer = SpoolWriter(spool, seal_interval=0.02)
    srv, _ = vigil_server(SpoolSink(writer), method=1, password="pw")
    # An older version's spool already holds a forged record.
    legacy = Record(os.urandom(16), CheckResult("web1", "HTTP;0;from an old spool", 2,
                                                "CRITICAL", 1000.0))
    old = SpoolWriter(spool, seal_interval=0.01)
    old.append([legacy])
    old.close()
    data = "".join(_send_nsca_input(h, s, 2, "CRITICAL: down") for h, s in FORGED)
    data += _send_nsca_input("web1", "HTTP", 2, "CRITICAL: down\n[1700000000] "
                             "DISABLE_NOTIFICATIONS")  # output: escaped, not a new line
    data += _send_nsca_input("web1", "PING", 0, "fine")
    with caplog.at_level(logging.WARNING):
        proc = run_send_nsca(srv.port, data, tmp_path, method=1, password="pw")
        assert proc.returncode == 0, proc.stdout
        relay = Relay(spool, [NSCADestination("127.0.0.1", central.port, password="pw")],
                      retry_min=0.05, retry_max=0.2, rescan_interval=0.1)
        t = threading.Thread(target=relay.run)
        t.start()
        try:
            assert wait_until(lambda: srv.server.stats.accepted == 2)
            lines = wait_lines(central.command_file, 2)
            assert wait_until(lambda: relay.workers[0].refused == 1)
        finally:
            relay.stop()
            t.join(10)
        srv.server.drops.flush()
    raw = central.command_file.read_text()
    lines = raw.splitlines()
    assert len(lines) == 2, raw
    assert all(COMMAND.match(ln) for ln in lines), raw
    assert "DISABLE_NOTIFICATIONS" not in "".join(ln.split(";")[0] for ln in lines)
    assert lines[0].endswith(";web1;HTTP;2;CRITICAL: down\\n[1700000000] DISABLE_NOTIFICATIONS")
    assert lines[1].endswith(";web1;PING;0;fine")
    assert srv.server.stats.forged == len(FORGED)
    # one summary line at the server, one at the relay, names escaped in them
    server_lines = [r for r in caplog.records if r.name == "nsca.server"
                    and "forged name" in r.getMessage()]
    assert len(server_lines) == 1
    assert f"forged name {len(FORGED)}" in server_lines[0].getMessage()
    assert "\n" not in server_lines[0].getMessage()
    assert any("forged name 1" in r.getMessage() and r.name == "nsca.relay"
               for r in caplog.records)


@pytest.mark.parametrize("host,service", FORGED)
def test_command_writer_refuses_forging_names(host: str, service: str | None) -> None:
    with pytest.raises(FieldError, match="';' or a line break"):
        format_command(CheckResult(host, service, 0, "x"), 1)


def test_command_writer_escapes_output_and_refuses_in_put(tmp_path: Path) -> None:
    out = tmp_path / "cmd"
    out.touch()
    sink = CommandFileSink(out)
    sink.put([(CheckResult("h", "s;x", 0, "x"), 1),
              (CheckResult("h", "s", 2, "a\nb\r\nc\\d"), 2)])
    sink.close()
    assert out.read_text() == "[2] PROCESS_SERVICE_CHECK_RESULT;h;s;2;a\\nb\\nc\\\\d\n"
    assert sink.refused == 1


@pytest.mark.integration
def test_forged_names_never_reach_nsca_ng(tmp_path: Path, caplog) -> None:
    """The NSCA-NG path: the relay refuses them before any PUSH."""
    from nsca.ng import NGDestination
    from nsca.testing import RealNSCANG

    ng = RealNSCANG(tmp_path / "ng", password="ng-pw").start()
    spool = tmp_path / "spool"
    w = SpoolWriter(spool, seal_interval=0.01)
    w.append([Record(os.urandom(16), CheckResult(h, s, 2, "x", 1700000000.0))
              for h, s in FORGED])
    w.append([Record(os.urandom(16), CheckResult("web1", "PING", 0, "a\nb", 1700000001.0))])
    w.close()
    relay = Relay(spool, [NGDestination("127.0.0.1", ng.port, identity="vigil", psk="ng-pw")],
                  retry_min=0.05, retry_max=0.2, rescan_interval=0.1)
    t = threading.Thread(target=relay.run)
    try:
        with caplog.at_level(logging.WARNING):
            t.start()
            assert wait_lines(ng.out, 1) == [
                "[1700000001] PROCESS_SERVICE_CHECK_RESULT;web1;PING;0;a\\nb"]
            assert wait_until(lambda: relay.workers[0].refused == len(FORGED))
    finally:
        relay.stop()
        t.join(10)
        ng.stop()
    assert ng.lines() == ["[1700000001] PROCESS_SERVICE_CHECK_RESULT;web1;PING;0;a\\nb"]
