"""Vigil's NSCA server against bad input: each case handled, logged, and the rest kept."""

from __future__ import annotations

import ipaddress
import logging
import os
import socket
import subprocess
import threading
import time
from pathlib import Path

import pytest

from nsca import client, crypto, packet
from nsca.commandfile import CommandFileSink, format_command
from nsca.errors import ConnectionFailed, FieldError, SpoolError
from nsca.result import CheckResult
from nsca.server import SpoolSink
from nsca.spool import SpoolWriter, read_segment, ready_segments
from nsca.testing import wait_lines
from vigil.testing.wait import wait_until


def raw_session(port: int, method: int, password: str, packets: list[bytes],
                corrupt: dict[int, int] | None = None, cut: int = 0) -> None:
    """Send plaintext packets encrypted as a client would; flip bytes of some."""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        init = b""
        while len(init) < packet.INIT_PACKET_SIZE:
            init += s.recv(packet.INIT_PACKET_SIZE - len(init))
        iv, _ts = packet.decode_init(init)
        enc = crypto.encryptor(method, iv, password)
        wire = bytearray()
        for i, p in enumerate(packets):
            c = bytearray(enc(p))
            if corrupt and i in corrupt:
                c[corrupt[i]] ^= 0x55
            wire += c
        s.sendall(bytes(wire[:len(wire) - cut]))
        s.shutdown(socket.SHUT_WR)
        while s.recv(4096):
            pass


def plain(i: int, ts: int | None = None, version: int = 3) -> bytes:
    return packet.encode_data(CheckResult("h", f"s{i}", 0, f"o{i}"),
                              int(time.time()) if ts is None else ts, version=version)


@pytest.mark.parametrize("method", [1, 3, 14])
def test_corrupt_packet_is_skipped_and_the_rest_counts(vigil_server, method, caplog) -> None:
    srv, out = vigil_server(method=method, password="pw")
    with caplog.at_level(logging.WARNING, logger="nsca.server"):
        raw_session(srv.port, method, "pw", [plain(i) for i in range(5)], corrupt={1: 300})
        lines = wait_lines(out, 4)
    assert [ln.split(";")[2] for ln in lines] == ["s0", "s2", "s3", "s4"]
    assert srv.server.stats.bad_packets == 1
    with caplog.at_level(logging.WARNING, logger="nsca.server"):
        srv.server.drops.flush()
    assert "dropped 1 from 127.0.0.1 in 0 s: BadCRC 1; e.g. CRC32 mismatch" in caplog.text


def test_truncated_last_packet(vigil_server, caplog) -> None:
    srv, out = vigil_server(method=1, password="pw")
    raw_session(srv.port, 1, "pw", [plain(i) for i in range(3)], cut=100)
    assert len(wait_lines(out, 2)) == 2
    assert wait_until(lambda: srv.server.stats.truncated == 1)


def test_wrong_password_and_wrong_cipher_deliver_nothing(vigil_server) -> None:
    srv, out = vigil_server(method=14, password="right")
    results = [CheckResult("h", "s", 0, "x")] * 3
    client.send_results(results, host="127.0.0.1", port=srv.port, password="wrong", method=14)
    client.send_results(results, host="127.0.0.1", port=srv.port, password="right", method=3)
    assert wait_until(lambda: srv.server.stats.bad_packets == 6)
    assert out.read_text() == "" and srv.server.stats.accepted == 0


def test_legacy_packets_several_per_connection(vigil_server) -> None:
    srv, out = vigil_server(method=1, password="pw")
    raw_session(srv.port, 1, "pw", [plain(i, version=2) for i in range(4)])
    assert len(wait_lines(out, 4)) == 4


def test_host_not_allowed(vigil_server, caplog) -> None:
    srv, out = vigil_server(method=1, password="pw",
                            allowed=(ipaddress.ip_network("10.0.0.0/8"),))
    with caplog.at_level(logging.WARNING, logger="nsca.server"), \
            pytest.raises(ConnectionFailed, match="allowed hosts"):
        client.send_results([CheckResult("h", "s", 0, "x")], host="127.0.0.1",
                            port=srv.port, password="pw")
    with caplog.at_level(logging.WARNING, logger="nsca.server"):
        assert wait_until(lambda: srv.server.drops.flush() > 0)
    assert "from 127.0.0.1 in 0 s: not in allowed hosts 1" in caplog.text
    assert srv.server.stats.refused_hosts == 1


def test_max_packet_age_with_skew(vigil_server) -> None:
    srv, out = vigil_server(method=1, password="pw", max_packet_age=30, clock_skew=5)
    now = int(time.time())
    stamps = [now - 34, now - 36, now + 4, now + 6, now]  # ok, old, ok, future, ok
    raw_session(srv.port, 1, "pw", [plain(i, ts) for i, ts in enumerate(stamps)])
    lines = wait_lines(out, 3)
    assert [ln.split(";")[2] for ln in lines] == ["s0", "s2", "s4"]
    st = srv.server.stats
    assert (st.too_old, st.future, st.accepted) == (1, 1, 3)


def test_max_packet_age_zero_is_off(vigil_server) -> None:
    srv, out = vigil_server(method=1, password="pw", max_packet_age=0)
    raw_session(srv.port, 1, "pw", [plain(0, 1)])
    assert len(wait_lines(out, 1)) == 1


def test_oversized_fields_never_reach_the_wire() -> None:
    with pytest.raises(FieldError):
        client.send_results([CheckResult("h" * 70, "s", 0, "x")], host="127.0.0.1", port=1)


def test_names_that_would_forge_a_command_are_refused(vigil_server) -> None:
    with pytest.raises(FieldError):
        format_command(CheckResult("h;x", "s", 0, "o"), 1)
    srv, out = vigil_server(method=1, password="pw")
    client.send_results([CheckResult("evil\n[1] SHUTDOWN_PROGRAM", "s", 0, "x"),
                         CheckResult("good", "s", 0, "x")],
                        host="127.0.0.1", port=srv.port, password="pw")
    lines = wait_lines(out, 1)
    time.sleep(0.2)  # under test: no second line comes (silence cannot be polled for)
    assert len(out.read_text().splitlines()) == 1 and ";good;" in lines[0]


def test_duplicate_result_ids_are_dropped(vigil_server) -> None:
    srv, out = vigil_server(method=1, password="pw")
    res = [CheckResult("h", f"s{i}", 0, "x") for i in range(3)]
    ids = [os.urandom(16) for _ in res]
    client.send_results(res, host="127.0.0.1", port=srv.port, password="pw", result_ids=ids)
    client.send_results(res, host="127.0.0.1", port=srv.port, password="pw", result_ids=ids)
    assert len(wait_lines(out, 3)) == 3
    assert wait_until(lambda: srv.server.stats.duplicates == 3)
    assert len(out.read_text().splitlines()) == 3


# ------------------------------------------------------------ command file

def test_command_pipe_missing_then_created_then_recreated(tmp_path: Path, caplog) -> None:
    """Lines wait while the pipe is missing; the sink reopens a recreated pipe."""
    fifo = tmp_path / "nagios.cmd"
    sink = CommandFileSink(fifo)
    with caplog.at_level(logging.INFO, logger="nsca.commandfile"):
        sink.put_lines(["a\n"])
        assert sink.pending == 1
        assert "is missing (Nagios not running?)" in caplog.text
        os.mkfifo(fifo)
        sink.put_lines(["b\n"])  # no reader yet
        assert sink.pending == 2
        assert "is a pipe nobody reads" in caplog.text
        got: list[bytes] = []

        def reader() -> None:
            with open(fifo, "rb") as fh:
                got.append(fh.read())

        t = threading.Thread(target=reader, daemon=True)
        t.start()
        assert wait_until(lambda: sink.flush())
        # Nagios restarts: the reader goes away and the pipe is recreated
        sink._close()  # let the reader see EOF, as after a restart
        t.join(5)
        assert got == [b"a\nb\n"]
        fifo.unlink()
        os.mkfifo(fifo)
        got.clear()
        t = threading.Thread(target=reader, daemon=True)
        t.start()
        sink.put_lines(["c\n"])  # may find no reader yet: then it waits in the queue
        assert wait_until(lambda: sink.flush() and sink.pending == 0)
        sink.close()
        t.join(5)
    assert got == [b"c\n"]


def test_reader_gone_is_broken_pipe_then_reopen(tmp_path: Path) -> None:
    fifo = tmp_path / "nagios.cmd"
    os.mkfifo(fifo)
    rfd = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK)
    sink = CommandFileSink(fifo)
    sink.put_lines(["one\n"])
    assert os.read(rfd, 100) == b"one\n"
    os.close(rfd)  # Nagios gone
    sink.put_lines(["two\n"])  # EPIPE: reopen fails (no reader): waits
    assert sink.pending == 1
    rfd = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK)
    assert sink.flush()
    assert os.read(rfd, 100) == b"two\n"
    os.close(rfd)
    sink.close()


def test_command_file_not_a_pipe(tmp_path: Path, caplog) -> None:
    regular = tmp_path / "regular.cmd"
    regular.write_text("")
    with caplog.at_level(logging.WARNING, logger="nsca.commandfile"):
        sink = CommandFileSink(regular)
        sink.put_lines(["x\n"])
    assert "is not a pipe; appending to it as a regular file" in caplog.text
    assert regular.read_text() == "x\n"
    a_dir = tmp_path / "adir"
    a_dir.mkdir()
    with caplog.at_level(logging.ERROR, logger="nsca.commandfile"):
        sink = CommandFileSink(a_dir)
        sink.put_lines(["x\n"])
    assert sink.pending == 1
    assert "is neither a pipe nor a regular file" in caplog.text


def test_alternate_dump_file_while_missing(tmp_path: Path) -> None:
    sink = CommandFileSink(tmp_path / "missing.cmd", alternate=tmp_path / "dump")
    sink.put_lines(["x\n"])
    assert (tmp_path / "dump").read_text() == "x\n"


# ------------------------------------------------------------------ spool

def test_spool_server_acknowledges_only_after_fsync(vigil_server, tmp_path: Path) -> None:
    writer = SpoolWriter(tmp_path / "spool", seal_interval=0.05)
    srv, _ = vigil_server(SpoolSink(writer), method=1, password="pw")
    res = [CheckResult("h", f"s{i}", 1, f"o{i}", timestamp=1000.0 + i) for i in range(50)]
    client.send_results(res, host="127.0.0.1", port=srv.port, password="pw")
    # send_results returned after the server closed: the segment is sealed already
    segs = ready_segments(tmp_path / "spool")
    got = [r for s in segs for r in read_segment(tmp_path / "spool" / "ready" / s)]
    assert [r.result for r in got] == res
    assert len({r.rid for r in got}) == 50


@pytest.mark.integration
def test_spool_recovers_a_torn_segment(tmp_path: Path) -> None:
    root = tmp_path / "spool"
    (root / "open").mkdir(parents=True)
    good = b'{"id":"000102030405060708090a0b0c0d0e0f","h":"h","s":null,"c":0,"o":"x","t":1.0}\n'
    dead = subprocess.run(["sh", "-c", "echo $$"], capture_output=True, text=True).stdout
    torn = f"1-{int(dead)}-1.jsonl"  # written by a server that is gone
    (root / "open" / torn).write_bytes(good + b'{"id":"01","h":')
    alive = f"2-{os.getppid()}-1.jsonl"  # another server still writing: left alone
    (root / "open" / alive).write_bytes(good)
    w = SpoolWriter(root)
    w.close()
    assert ready_segments(root) == [torn]
    assert len(read_segment(root / "ready" / torn)) == 1
    assert (root / "open" / alive).exists()


@pytest.mark.integration
def test_spool_full_disk(tmp_path: Path, caplog) -> None:
    mnt = tmp_path / "small"
    mnt.mkdir()
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(mnt)],
                       capture_output=True)
    if r.returncode:
        pytest.skip("cannot mount a small tmpfs here")
    try:
        w = SpoolWriter(mnt / "spool", seal_interval=10, retry_after=0.3)
        big = "x" * 3000
        from nsca.spool import Record

        with caplog.at_level(logging.ERROR, logger="nsca.spool"), \
                pytest.raises(SpoolError, match="disk full"):
            for i in range(100):
                w.append([Record(os.urandom(16), CheckResult("h", "s", 0, f"{i}{big}"))])
        assert "refusing new results for 0.3s" in caplog.text
        with pytest.raises(SpoolError):  # at once: still refusing
            w.append([Record(os.urandom(16), CheckResult("h", "s", 0, "x"))])
        # what fitted before the disk filled up is sealed, whole records only
        kept = [r for s in ready_segments(mnt / "spool")
                for r in read_segment(mnt / "spool" / "ready" / s)]
        assert kept and all(r.result.output.endswith(big) for r in kept)
        for s in ready_segments(mnt / "spool"):  # the admin frees space
            (mnt / "spool" / "ready" / s).unlink()
        time.sleep(0.35)  # under test: the writer refuses for retry_after=0.3 s, then tries again
        ticket = w.append([Record(os.urandom(16), CheckResult("h", "s", 0, "again"))])
        assert w.wait_sealed(ticket, 5)
        w.close()
    finally:
        subprocess.run(["umount", "-l", str(mnt)], check=False)


def test_server_with_full_spool_keeps_running(vigil_server, tmp_path: Path) -> None:
    writer = SpoolWriter(tmp_path / "spool", retry_after=60)
    writer.failed = "spool: cannot write: disk full"  # as _fail() leaves it
    writer._failed_at = time.monotonic()
    srv, _ = vigil_server(SpoolSink(writer), method=1, password="pw")
    for _ in range(2):
        # the server resets the connection: the client must not think it was stored
        with pytest.raises(ConnectionFailed):
            client.send_results([CheckResult("h", "s", 0, "x")], host="127.0.0.1",
                                port=srv.port, password="pw")
    assert srv.server.stats.accepted == 0
    assert srv.server.stats.connections == 2


@pytest.mark.integration
def test_client_timeout_against_a_server_that_never_speaks() -> None:
    silent = socket.create_server(("127.0.0.1", 0))  # accepts (backlog), never answers
    try:
        t0 = time.monotonic()
        with pytest.raises(ConnectionFailed, match="timed out"):
            client.send_results([CheckResult("h", "s", 0, "x")], host="127.0.0.1",
                                port=silent.getsockname()[1], timeout=0.5)
        assert time.monotonic() - t0 < 3
    finally:
        silent.close()


def test_server_closes_an_idle_client(vigil_server, caplog) -> None:
    srv, _ = vigil_server(method=1, password="pw", first_packet_timeout=0.5)
    with caplog.at_level(logging.WARNING, logger="nsca.server"), \
            socket.create_connection(("127.0.0.1", srv.port), timeout=5) as s:
        s.recv(packet.INIT_PACKET_SIZE)
        t0 = time.monotonic()
        assert s.recv(10) == b""  # the server gave up on us
        assert time.monotonic() - t0 < 3
        assert wait_until(lambda: srv.server.drops.flush() > 0)
    assert "no valid packet within 0.5 s 1" in caplog.text


def test_stop_does_not_wait_for_idle_clients(vigil_server) -> None:
    srv, out = vigil_server(method=1, password="pw", idle_timeout=60)
    with socket.create_connection(("127.0.0.1", srv.port), timeout=5) as s:
        init = s.recv(packet.INIT_PACKET_SIZE)
        iv, ts = packet.decode_init(init)
        s.sendall(crypto.encryptor(1, iv, "pw")(
            packet.encode_data(CheckResult("h", "s", 0, "kept"), ts)))
        assert len(wait_lines(out, 1)) == 1
        t0 = time.monotonic()
        srv.stop()  # the client is still connected and silent
        assert time.monotonic() - t0 < 3
        assert s.recv(10) == b""
