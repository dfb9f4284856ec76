"""The spool and the outbox: nothing lost, order kept, a dead server never blocks a pass."""

from __future__ import annotations

import json
import os
import socket
import threading
from collections.abc import Sequence
from pathlib import Path

import pytest

from monitor.spool import Spool
from monitor.testing import DebianNSCA
from monitor.transport import Outbox, SendError, SendNSCASender, VigilNSCASender
from nsca.result import CheckResult
from vigil.config import Secret
from vigil.testing.ports import free_port
from vigil.testing.wait import wait_until


def results(n: int, tag: str = "") -> list[CheckResult]:
    return [CheckResult("vigil-a1", f"svc{i}", i % 4, f"OUT {tag}{i}", 1000.0 + i)
            for i in range(n)]


class Recorder:
    """A sender that fails while ``down`` is set; records what got through."""

    def __init__(self) -> None:
        self.down = False
        self.permanent: set[str] = set()
        self.got: list[list[CheckResult]] = []

    def send(self, batch: Sequence[CheckResult]) -> None:
        if any(r.output in self.permanent for r in batch):
            raise SendError("name too long", permanent=True)
        if self.down:
            raise SendError("connection refused")
        self.got.append(list(batch))

    def describe(self) -> str:
        return "recorder"


def test_spool_round_trip_in_order(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "s")
    spool.put(results(2, "a"))
    spool.put(results(3, "b"))
    batches = [b for _, b in spool.batches()]
    assert batches == [results(2, "a"), results(3, "b")]
    assert spool.pending_results() == 5
    host = CheckResult("vigil-a1", None, 0, "UP", None)
    spool.put([host])
    assert [b for _, b in spool.batches()][-1] == [host]


def test_spool_files_are_private_and_whole(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "s")
    path = spool.put(results(1))
    assert path.name == "000000000001.json"
    assert (path.stat().st_mode & 0o777) == 0o600
    assert not [p for p in path.parent.iterdir() if p.name.startswith(".")]


def test_spool_keeps_at_most_max_passes(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    spool = Spool(tmp_path / "s", max_passes=3)
    for i in range(5):
        spool.put(results(1, f"p{i}"))
    assert [b[0].output for _, b in spool.batches()] == ["OUT p20", "OUT p30", "OUT p40"]
    assert "dropping the oldest pass" in caplog.text


def test_corrupt_spool_file_is_set_aside(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    spool = Spool(tmp_path / "s")
    spool.put(results(1, "a"))
    bad = spool.put(results(1, "b"))
    spool.put(results(1, "c"))
    bad.write_text('[{"host": "x"')
    assert [b[0].output for _, b in spool.batches()] == ["OUT a0", "OUT c0"]
    assert (bad.parent / (bad.name + ".corrupt")).exists()
    assert "is corrupt" in caplog.text
    wrong = spool.put(results(1, "d"))
    wrong.write_text(json.dumps([{"host": "h", "service": "s", "status": 70000, "output": "x"}]))
    assert [b[0].output for _, b in spool.batches()] == ["OUT a0", "OUT c0"]


def test_outbox_waits_on_disk_and_sends_in_order(tmp_path: Path,
                                                 caplog: pytest.LogCaptureFixture) -> None:
    sender = Recorder()
    box = Outbox(sender, Spool(tmp_path / "s"))
    d = box.deliver(results(2, "1-"))
    assert (d.sent, d.waiting_passes, d.error) == (2, 0, None)
    sender.down = True
    for tag in ("2-", "3-", "4-"):
        d = box.deliver(results(2, tag))
        assert d.error == "connection refused" and d.sent == 0
    assert d.waiting_passes == 3
    assert caplog.text.count("cannot send to recorder") == 1  # a state change, not every pass
    # A new scheduler process (restart) finds them on disk.
    box = Outbox(sender, Spool(tmp_path / "s"))
    sender.down = False
    d = box.deliver(results(2, "5-"))
    assert (d.sent, d.passes_sent, d.waiting_passes) == (8, 4, 0)
    assert [b[0].output for b in sender.got] == ["OUT 1-0", "OUT 2-0", "OUT 3-0", "OUT 4-0",
                                                 "OUT 5-0"]


def test_a_pass_the_server_can_never_take_does_not_block_the_rest(tmp_path: Path) -> None:
    sender = Recorder()
    box = Outbox(sender, Spool(tmp_path / "s"))
    sender.permanent = {"OUT x0"}
    d = box.deliver(results(1, "x"))
    assert d.waiting_passes == 0 and d.error is None
    d = box.deliver(results(1, "y"))
    assert d.sent == 1 and [b[0].output for b in sender.got] == ["OUT y0"]
    assert list((tmp_path / "s").glob("*.rejected"))


@pytest.mark.integration
def test_vigil_client_to_nothing_listening_spools(tmp_path: Path) -> None:
    sender = VigilNSCASender("127.0.0.1", free_port(), Secret("x"), 1, 2)
    box = Outbox(sender, Spool(tmp_path / "s"))
    d = box.deliver(results(3))
    assert d.waiting_passes == 1 and d.error is not None and "127.0.0.1" in d.error


@pytest.mark.integration
def test_vigil_client_to_a_hung_server_times_out_and_spools(tmp_path: Path) -> None:
    # Accepts the connection and never says a word (no init packet).
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(5)
    conns: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        srv.settimeout(0.2)
        while not stop.is_set():
            try:
                conns.append(srv.accept()[0])
            except OSError:
                continue

    t = threading.Thread(target=accept, daemon=True)
    t.start()
    try:
        sender = VigilNSCASender("127.0.0.1", srv.getsockname()[1], Secret("x"), 1, 1)
        d = Outbox(sender, Spool(tmp_path / "s")).deliver(results(1))
        assert d.waiting_passes == 1 and d.error is not None
    finally:
        stop.set()
        t.join(5)
        srv.close()
        for c in conns:
            c.close()


@pytest.mark.parametrize("transport", ["vigil", "send_nsca"])
@pytest.mark.integration
def test_spooled_results_reach_a_real_nsca_after_it_comes_back(tmp_path: Path,
                                                               transport: str) -> None:
    out = tmp_path / "commands"
    out.touch()
    nsca = DebianNSCA(tmp_path / "nsca", out, password="pw", method=1)
    secret = Secret("pw")
    sender = (VigilNSCASender("127.0.0.1", nsca.port, secret, 1, 3) if transport == "vigil"
              else SendNSCASender("/usr/sbin/send_nsca", "127.0.0.1", nsca.port, secret, 1,
                                  tmp_path / "cfg", 3))
    box = Outbox(sender, Spool(tmp_path / "s"))
    assert box.deliver(results(2, "early-")).waiting_passes == 1  # nobody listening
    assert box.deliver(results(2, "later-")).waiting_passes == 2
    with nsca:
        d = box.deliver([CheckResult("vigil-a1", None, 0, "OK - host", None)])
        assert (d.sent, d.waiting_passes, d.error) == (5, 0, None)
        wait_until(lambda: out.read_text().count("\n") >= 5, 10, what="five lines filed")
    lines = out.read_text().splitlines()
    assert [ln.split(";")[-1] for ln in lines] == ["OUT early-0", "OUT early-1", "OUT later-0",
                                                   "OUT later-1", "OK - host"]
    assert "PROCESS_HOST_CHECK_RESULT;vigil-a1;0;OK - host" in lines[-1]
    if transport == "send_nsca":
        cfg = tmp_path / "cfg" / "send_nsca.cfg"
        assert (os.stat(cfg).st_mode & 0o777) == 0o600
