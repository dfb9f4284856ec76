"""NSCA-NG forwarder against the real Debian nsca-ng server (TLS-PSK)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from nsca.commandfile import format_command
from nsca.errors import ConnectionFailed
from nsca.ng import NGDestination, NGSession
from nsca.relay import NSCADestination, Relay, read_cursor
from nsca.result import CheckResult
from nsca.spool import Record, SpoolWriter, ready_segments
from nsca.testing import RealNSCANG, wait_lines
from vigil.testing.ports import free_port
from vigil.testing.wait import wait_until

pytestmark = pytest.mark.integration  # real processes: vigil commands, servers, plugins


@pytest.fixture
def nsca_ng(tmp_path: Path):
    servers: list[RealNSCANG] = []

    def make(**kw):
        s = RealNSCANG(tmp_path / f"ng{len(servers)}", **kw).start()
        servers.append(s)
        return s

    yield make
    for s in servers:
        s.stop()


def test_push_reaches_the_command_file(nsca_ng) -> None:
    ng = nsca_ng(password="ng-s3cret")
    s = NGSession("127.0.0.1", ng.port, identity="vigil", psk="ng-s3cret").open()
    s.push(format_command(CheckResult("pbx", "SIP", 2, "down\nsince 5 min; a\\b"), 1700000000))
    s.push(format_command(CheckResult("pbx", None, 0, "UP"), 1700000001))
    s.quit()
    assert wait_lines(ng.out, 2) == [
        "[1700000000] PROCESS_SERVICE_CHECK_RESULT;pbx;SIP;2;down\\nsince 5 min; a\\\\b",
        "[1700000001] PROCESS_HOST_CHECK_RESULT;pbx;0;UP"]


def test_wrong_secret_or_identity_is_refused(nsca_ng) -> None:
    ng = nsca_ng(password="right")
    with pytest.raises(ConnectionFailed, match="handshake failed"):
        NGSession("127.0.0.1", ng.port, identity="vigil", psk="wrong", timeout=3).open()
    with pytest.raises(ConnectionFailed):
        NGSession("127.0.0.1", ng.port, identity="stranger", psk="right", timeout=3).open()


def test_relay_forwards_to_nsca_ng_and_nsca_alike(tmp_path: Path, nsca_ng,
                                                   vigil_server) -> None:
    """The DMZ proxy: NSCA in, spool, NSCA-NG out (and plain NSCA to a second central)."""
    ng = nsca_ng(password="ng-s3cret",
                 commands="PROCESS_(SERVICE|HOST)_CHECK_RESULT;(h|ok).*")
    central, out = vigil_server(method=1, password="pw")
    spool = tmp_path / "spool"
    w = SpoolWriter(spool, seal_interval=0.01)
    results = [CheckResult("h", f"s{i}", i % 4, f"r{i}", 1700000000.0 + i) for i in range(45)]
    w.append(Record(os.urandom(16), r) for r in results[:40])
    # a command the server is not authorised to take: refused, logged, skipped
    w.append([Record(os.urandom(16), CheckResult("forbidden", "s", 0, "nope"))])
    w.append(Record(os.urandom(16), r) for r in results[40:])
    w.close()
    dests = [NGDestination("127.0.0.1", ng.port, identity="vigil", psk="ng-s3cret"),
             NSCADestination("127.0.0.1", central.port, password="pw")]
    relay = Relay(spool, dests, rescan_interval=0.1)
    relay.start()
    try:
        lines = wait_lines(ng.out, 45)
        assert len(wait_lines(out, 46)) == 46
        assert wait_until(lambda: relay.workers[0].sent == 46)
    finally:
        relay.stop()
        relay.shutdown()
    assert [ln.rsplit(";", 1)[1] for ln in lines] == [f"r{i}" for i in range(45)]
    assert lines[3] == "[1700000003] PROCESS_SERVICE_CHECK_RESULT;h;s3;3;r3"
    assert read_cursor(spool, dests[0].name) == read_cursor(spool, dests[1].name)
    assert not ready_segments(spool)


def test_ng_server_down_then_up(tmp_path: Path) -> None:
    port = free_port()
    spool = tmp_path / "spool"
    w = SpoolWriter(spool, seal_interval=0.01)
    w.append(Record(os.urandom(16), CheckResult("h", f"s{i}", 0, f"r{i}")) for i in range(30))
    w.close()
    relay = Relay(spool, [NGDestination("127.0.0.1", port, identity="vigil", psk="k",
                                        timeout=2)],
                  retry_min=0.05, retry_max=0.2, rescan_interval=0.1)
    relay.start()
    ng = RealNSCANG(tmp_path / "ng", password="k", port=port)
    try:
        assert wait_until(lambda: relay.workers[0].failures >= 2)
        ng.start()
        assert len(wait_lines(ng.out, 30)) == 30
    finally:
        relay.stop()
        relay.shutdown()
        ng.stop()
