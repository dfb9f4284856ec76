"""Wire compatibility both ways with the real Debian nsca / send_nsca, methods 0, 1, 3, 14."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest

from nsca import client
from nsca.result import CheckResult
from nsca.testing import run_send_nsca, wait_lines
from vigil.testing.wait import wait_until

METHODS = [0, 1, 3, 14]
RESULTS = [
    CheckResult("web1", "HTTP", 0, "HTTP OK: 200|time=0.01s"),
    CheckResult("db1", None, 1, "PING WARNING"),
    CheckResult("pbx", "SIP trunk", 2, "CRITICAL: first line\nsecond line; a\\b"),
]
EXPECTED = [
    "PROCESS_SERVICE_CHECK_RESULT;web1;HTTP;0;HTTP OK: 200|time=0.01s",
    "PROCESS_HOST_CHECK_RESULT;db1;1;PING WARNING",
    # newline and backslash escaped, as nsca 2.10.2 does (Nagios unescapes both)
    "PROCESS_SERVICE_CHECK_RESULT;pbx;SIP trunk;2;CRITICAL: first line\\nsecond line; a\\\\b",
]
INPUT = ("web1\tHTTP\t0\tHTTP OK: 200|time=0.01s\x17db1\t1\tPING WARNING\x17"
         "pbx\tSIP trunk\t2\tCRITICAL: first line\nsecond line; a\\b\x17")


def strip_ts(lines: list[str]) -> list[str]:
    return [re.sub(r"^\[\d+\] ", "", ln) for ln in lines]


@pytest.mark.parametrize("legacy", [False, True], ids=["v3", "legacy"])
@pytest.mark.parametrize("method", METHODS)
def test_vigil_client_to_real_nsca(real_nsca, method: int, legacy: bool) -> None:
    nsca = real_nsca(method=method, password="pässword-long-enough-to-be-cut-1234567890")
    n = client.send_results(RESULTS, host="127.0.0.1", port=nsca.port,
                            password="pässword-long-enough-to-be-cut-1234567890",
                            method=method, packet_version=2 if legacy else 3)
    assert n == 3
    assert strip_ts(wait_lines(nsca.command_file, 3)) == EXPECTED


@pytest.mark.parametrize("legacy", [False, True], ids=["v3", "legacy"])
@pytest.mark.parametrize("method", METHODS)
def test_real_send_nsca_to_vigil_server(vigil_server, tmp_path: Path, method: int,
                                        legacy: bool) -> None:
    srv, out = vigil_server(method=method, password="s3cret")
    proc = run_send_nsca(srv.port, INPUT, tmp_path, method=method, password="s3cret",
                         legacy=legacy)
    assert proc.returncode == 0, proc.stderr
    assert b"3 data packet(s) sent" in proc.stdout
    lines = wait_lines(out, 3)
    assert strip_ts(lines) == EXPECTED
    assert wait_until(lambda: srv.server.stats.accepted == 3)
    assert srv.server.stats.bad_packets == 0


@pytest.mark.parametrize("method", METHODS)
def test_vigil_send_nsca_command_to_real_nsca(real_nsca, tmp_path: Path, method: int) -> None:
    nsca = real_nsca(method=method, password="pw")
    prog = str(Path(sys.executable).parent / "vigil-send-nsca")
    proc = run_send_nsca(nsca.port, INPUT, tmp_path, method=method, password="pw",
                         program=prog)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == b"3 data packet(s) sent to host successfully.\n"
    assert strip_ts(wait_lines(nsca.command_file, 3)) == EXPECTED


def test_many_results_one_connection_both_ways(real_nsca, vigil_server) -> None:
    results = [CheckResult(f"h{i % 50}", f"svc{i}", i % 4, f"out {i}") for i in range(2000)]
    nsca = real_nsca(method=1, password="x")
    assert client.send_results(results, host="127.0.0.1", port=nsca.port, password="x") == 2000
    assert len(wait_lines(nsca.command_file, 2000)) == 2000
    srv, out = vigil_server(method=1, password="x")
    assert client.send_results(results, host="127.0.0.1", port=srv.port, password="x") == 2000
    assert len(wait_lines(out, 2000)) == 2000


def test_real_nsca_init_packet(real_nsca) -> None:
    """The daemon's side of the handshake: 128-byte IV + its clock, 132 bytes."""
    import socket
    import time

    from nsca import packet

    nsca = real_nsca(method=1, password="x")
    with socket.create_connection(("127.0.0.1", nsca.port), timeout=5) as s:
        data = b""
        while len(data) < packet.INIT_PACKET_SIZE:
            chunk = s.recv(packet.INIT_PACKET_SIZE - len(data))
            assert chunk
            data += chunk
        iv, ts = packet.decode_init(data)
    assert len(iv) == 128 and len(set(iv)) > 32  # random, not zeros
    assert abs(ts - time.time()) < 5
