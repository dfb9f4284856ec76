"""The relay: spool first, Batch_Size per connection, per-server cursors, SIGKILL."""

from __future__ import annotations

import collections
import contextlib
import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from nsca import client
from nsca.relay import Cursor, NSCADestination, Relay, read_cursor, write_cursor
from nsca.result import CheckResult
from nsca.server import SpoolSink
from nsca.spool import Record, SpoolWriter, ready_segments
from nsca.testing import RealNSCA, wait_lines
from vigil.statefile import CorruptStateError
from vigil.testing.ports import free_port
from vigil.testing.wait import poll, wait_until

VIGIL = str(Path(sys.executable).parent / "vigil")


def outputs(lines: list[str]) -> list[str]:
    return [ln.rsplit(";", 1)[1] for ln in lines]


def test_relay_batches_per_server_independently(tmp_path: Path, vigil_server) -> None:
    spool = tmp_path / "spool"
    writer = SpoolWriter(spool, seal_interval=0.02)
    a, a_out = vigil_server(method=1, password="pw")
    b_port = free_port()
    dests = [NSCADestination("127.0.0.1", a.port, password="pw", batch_size=20),
             NSCADestination("127.0.0.1", b_port, password="pw", batch_size=20)]
    relay = Relay(spool, dests, retry_min=0.05, retry_max=0.2, rescan_interval=0.2)
    t = threading.Thread(target=relay.run)
    t.start()
    try:
        recs = [Record(os.urandom(16), CheckResult("h", f"s{i}", 0, f"r{i}", 1000.0 + i))
                for i in range(205)]
        writer.append(recs[:100])
        writer.append(recs[100:])
        writer.close()
        lines = wait_lines(a_out, 205)
        assert outputs(lines) == [f"r{i}" for i in range(205)]
        # the check time travelled with the result
        assert lines[0].startswith("[1000] ")
        assert a.server.stats.connections == 11  # ceil(205 / 20)
        assert relay.workers[1].failures >= 1 and relay.workers[1].sent == 0
        assert ready_segments(spool)  # kept for the server that is down
        b, b_out = vigil_server(method=1, password="pw", port=b_port)
        assert outputs(wait_lines(b_out, 205)) == [f"r{i}" for i in range(205)]
        assert poll(lambda: not ready_segments(spool)), "finished segments are removed"
    finally:
        relay.stop()
        t.join(10)
    assert read_cursor(spool, dests[0].name) == read_cursor(spool, dests[1].name)


def test_corrupt_cursor_is_reported_not_trusted(tmp_path: Path) -> None:
    spool = tmp_path / "spool"
    write_cursor(spool, "nsca-127.0.0.1-1", Cursor("x", 1), fsync=True)
    assert read_cursor(spool, "nsca-127.0.0.1-1") == Cursor("x", 1)
    (spool / "cursors" / "nsca-127.0.0.1-1.json").write_text("{not json")
    with pytest.raises(CorruptStateError, match="remove it to send the whole spool"):
        Relay(spool, [NSCADestination("127.0.0.1", 1)])


def _relay_conf(tmp_path: Path, spool: Path, centrals: list[int]) -> Path:
    conf = tmp_path / "vigil.conf"
    conf.write_text(
        "[Site]\nState_Dir={0}\nLog_Dir={0}\n[Log]\nLevel=INFO\n"
        "[NSCA]\nPassword=pw\nEncryption_Method=1\nSpool_Dir={1}\nBatch_Size=20\n"
        "Central_Servers={2}\nRetry_Min_sec=1\nRetry_Max_sec=1\n".format(
            tmp_path, spool, ",".join(f"127.0.0.1:{p}" for p in centrals)))
    conf.chmod(0o600)
    return conf


def _start_relay(conf: Path, log: Path) -> subprocess.Popen[bytes]:
    with open(log, "ab") as fh:
        return subprocess.Popen([VIGIL, "-c", str(conf), "nsca", "relay"],
                                stdout=subprocess.DEVNULL, stderr=fh)


@pytest.mark.e2e
def test_sigkill_during_burst_exactly_once_per_central(tmp_path: Path, vigil_server) -> None:
    """10,000 results; relay SIGKILLed mid-burst while the real nsca central is down."""
    total = 10_000
    spool = tmp_path / "spool"
    # the configuration server's receiving side: Vigil server spooling to disk
    intake, _ = vigil_server(SpoolSink(SpoolWriter(spool, seal_interval=0.05)),
                             method=1, password="pw")
    central_a, a_out = vigil_server(method=1, password="pw", dedupe_window=100_000)
    central_b = RealNSCA(tmp_path / "central-b", method=1, password="pw")  # not started
    conf = _relay_conf(tmp_path, spool, [central_a.port, central_b.port])
    relay_log = tmp_path / "relay.log"
    relay = _start_relay(conf, relay_log)

    def burst() -> None:
        for start in range(0, total, 100):
            client.send_results([CheckResult(f"h{i % 37}", "svc", i % 4, f"r{i}")
                                 for i in range(start, start + 100)],
                                host="127.0.0.1", port=intake.port, password="pw")
            time.sleep(0.01)  # the load's shape: a burst of batches, not one write

    sender = threading.Thread(target=burst)
    sender.start()
    try:
        killed_at = []
        for mark in (1500, 3500, 5500):  # three SIGKILLs, to land in a batch now and then
            assert wait_until(lambda m=mark: len(a_out.read_text().splitlines()) >= m, 60)
            relay.send_signal(signal.SIGKILL)
            relay.wait(10)
            killed_at.append((len(a_out.read_text().splitlines()), sender.is_alive()))
            relay = _start_relay(conf, relay_log)
        central_b.start()
        sender.join(120)
        a_lines = wait_lines(a_out, total, 120)
        b_lines = wait_lines(central_b.command_file, total, 120)
        time.sleep(1.5)  # anything extra would show up now
        a_lines = a_out.read_text().splitlines()
        b_lines = central_b.lines()
    finally:
        relay.terminate()
        rc = relay.wait(15)
        central_b.stop()
    assert rc == 0, "SIGTERM is a clean exit"
    want = collections.Counter(f"r{i}" for i in range(total))
    for name, lines in (("A (Vigil)", a_lines), ("B (C nsca)", b_lines)):
        got = collections.Counter(outputs(lines))
        dups = {k: v for k, v in got.items() if v > 1}
        assert not dups, f"central {name}: {len(dups)} duplicated, e.g. {list(dups)[:3]}"
        assert got == want, f"central {name}: {len(want - got)} missing"
    assert all(re.match(r"^\[\d+\] PROCESS_SERVICE_CHECK_RESULT;h\d+;svc;[0-3];r\d+$", ln)
               for ln in a_lines + b_lines)
    print(f"killed at (results at A, burst running): {killed_at}; "
          f"A dropped {central_a.server.stats.duplicates} re-sent duplicates")


def test_lost_cursor_update_vigil_dedupes_c_nsca_cannot(tmp_path: Path, vigil_server,
                                                        real_nsca) -> None:
    """The crash window made deterministic: a batch delivered, its cursor update lost.

    A Vigil central drops the re-sent batch by result id. A C nsca has no way to
    tell and files it twice: the documented limit (one batch at most).
    """
    spool = tmp_path / "spool"
    writer = SpoolWriter(spool, seal_interval=0.01)
    writer.append(Record(os.urandom(16), CheckResult("h", f"s{i}", 0, f"r{i}"))
                  for i in range(40))
    writer.close()
    vig, vig_out = vigil_server(method=1, password="pw")
    c_nsca = real_nsca(method=1, password="pw")
    dests = [NSCADestination("127.0.0.1", vig.port, password="pw"),
             NSCADestination("127.0.0.1", c_nsca.port, password="pw")]

    def run_until_sent(n: int) -> None:
        relay = Relay(spool, dests, rescan_interval=0.1)
        relay.start()
        assert wait_until(lambda: all(w.sent >= n for w in relay.workers))
        relay.stop()
        relay.shutdown()

    seg = ready_segments(spool)[0]
    saved = (spool / "ready" / seg).read_bytes()
    run_until_sent(40)
    assert len(wait_lines(vig_out, 40)) == 40
    assert not ready_segments(spool)  # all delivered and collected
    # Replay the crash: the second batch went out, its cursor update was lost.
    (spool / "ready" / seg).write_bytes(saved)
    for d in dests:
        write_cursor(spool, d.name, Cursor(seg, 20), fsync=True)
    run_until_sent(20)
    time.sleep(0.3)  # under test: no extra line comes after the replay (silence)
    assert len(vig_out.read_text().splitlines()) == 40
    assert vig.server.stats.duplicates == 20
    assert len(c_nsca.lines()) == 60  # the C daemon filed the replayed batch again


@pytest.mark.integration
def test_a_second_relay_on_the_same_spool_is_refused(tmp_path: Path) -> None:
    from nsca.errors import NSCAError

    spool = tmp_path / "spool"
    first = Relay(spool, [NSCADestination("127.0.0.1", free_port())], rescan_interval=0.1)
    first.start()
    try:
        second = Relay(spool, [NSCADestination("127.0.0.1", free_port())])
        with pytest.raises(NSCAError, match=rf"another relay \(pid {os.getpid()}\) is running"):
            second.start()
    finally:
        first.stop()
        first.shutdown()
    third = Relay(spool, [NSCADestination("127.0.0.1", free_port())], rescan_interval=0.1)
    third.start()  # the lock went with the first relay
    third.stop()
    third.shutdown()


def test_cursor_that_cannot_be_written_holds_the_destination(tmp_path: Path, vigil_server,
                                                             caplog) -> None:
    import logging

    spool = tmp_path / "spool"
    writer = SpoolWriter(spool, seal_interval=0.01)
    central, out = vigil_server(method=1, password="pw")
    relay = Relay(spool, [NSCADestination("127.0.0.1", central.port, password="pw")],
                  retry_min=0.05, rescan_interval=0.1)
    cursors = spool / "cursors"
    with caplog.at_level(logging.INFO, logger="nsca.relay"):
        relay.start()
        try:
            writer.append(Record(os.urandom(16), CheckResult("h", f"s{i}", 0, f"r{i}"))
                          for i in range(20))
            assert len(wait_lines(out, 20)) == 20
            cursors.rename(tmp_path / "cursors.away")
            cursors.write_text("not a folder")  # every cursor write now fails
            writer.append(Record(os.urandom(16), CheckResult("h", f"s{i}", 0, f"r{i}"))
                          for i in range(20, 60))
            assert wait_until(lambda: "cannot record the cursor" in caplog.text)
            time.sleep(0.3)  # under test: the relay holds, no further batch comes (silence)
            assert len(out.read_text().splitlines()) == 40  # held after one batch
            cursors.unlink()
            (tmp_path / "cursors.away").rename(cursors)
            assert len(wait_lines(out, 60)) == 60
            assert "cursor recorded again" in caplog.text
        finally:
            relay.stop()
            relay.shutdown()
            writer.close()


def test_relay_to_the_local_nagios_pipe(tmp_path: Path) -> None:
    from nsca.relay import CommandFileDestination

    fifo = tmp_path / "nagios.cmd"
    os.mkfifo(fifo)
    spool = tmp_path / "spool"
    writer = SpoolWriter(spool, seal_interval=0.01)
    writer.append(Record(os.urandom(16), CheckResult("h", f"s{i}", 0, f"r{i}", 1000.0 + i))
                  for i in range(30))
    writer.close()
    relay = Relay(spool, [CommandFileDestination(fifo)], retry_min=0.05, retry_max=0.1,
                  rescan_interval=0.1)
    relay.start()
    try:
        assert wait_until(lambda: relay.workers[0].failures >= 2)  # Nagios not reading yet
        fd = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK)
        got = b""

        def thirty_lines() -> bool:
            nonlocal got
            with contextlib.suppress(BlockingIOError):
                got += os.read(fd, 65536)
            return got.count(b"\n") >= 30

        try:
            poll(thirty_lines, 10, 0.02)
        finally:
            os.close(fd)
    finally:
        relay.stop()
        relay.shutdown()
    lines = got.decode().splitlines()
    assert lines[0] == "[1000] PROCESS_SERVICE_CHECK_RESULT;h;s0;0;r0"
    assert outputs(lines) == [f"r{i}" for i in range(30)]


def test_bad_spool_records_are_skipped_not_fatal(tmp_path: Path, vigil_server) -> None:
    from nsca.spool import decode_record, encode_record, read_segment

    good = Record(os.urandom(16), CheckResult("h", "s", 0, "fine", 1000.0))
    line = encode_record(good)
    bad = [line.replace(good.rid.hex().encode(), b"abcd"),  # an id of 2 bytes
           line.replace(b'"c":0', b'"c":70000'),  # status beyond 16 bits
           line.replace(b'"h":"h"', b'"h":5'),  # host not text
           b"{not json\n"]
    for b in bad:
        with pytest.raises(ValueError):
            decode_record(b)
    seg = tmp_path / "segment.jsonl"
    seg.write_bytes(b"".join(bad) + line)
    assert read_segment(seg) == [good]
