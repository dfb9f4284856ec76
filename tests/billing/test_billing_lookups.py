"""The look-up workers (billing.server): requests whose account is not in
memory are taken in batches, their accounts read together; a database that
cannot read them drops the batch at once, unanswered (the gateways retry or
fail over), instead of each request waiting its own timeout in one thread.

In process, with the demo provisioning (SQLite; a throw-away MariaDB for
the hung database): the engine is built as `vigil radiusd` builds it, and
the batches are run in the test's thread."""

from __future__ import annotations

import os
import signal
import socket
from collections.abc import Iterator

import pytest

from billing.radius_decode import ReplyTo
from billing.request import CallRequest
from billing.server import Incoming, RadiusServer, Workers
from billing.testing import BillingSandbox, in_process_server
from vigil.testing.mariadb import MariaDB

pytestmark = pytest.mark.integration

ACCOUNTS = ("193.100.201.1", "4202111222")  # the demo's debit and credit accounts


@pytest.fixture
def server(tmp_path) -> Iterator[tuple[RadiusServer, socket.socket]]:  # type: ignore[no-untyped-def]
    with in_process_server(BillingSandbox(base=tmp_path / "vigil").prepare()) as (srv, sink):
        sink.settimeout(2.0)
        yield srv, sink


def miss(srv: RadiusServer, sink: socket.socket, k: int, account: str) -> Incoming:
    """An authorization past the boundary whose account is not in memory."""
    req = CallRequest(source_ip="127.0.0.1", nas_ip="164.4.89.20", user_name="x",
                      called="441259322891834", calling=account, conf_id=f"miss-{k}",
                      ivr_out=[f"PortaBilling_UserName:{account}",
                               "PortaBilling_Ignore_Password:YES"])
    inc = Incoming(ReplyTo(k, bytes(16), b"nextone"), req, sink.getsockname(), srv.auth_sock,
                   f"127.0.0.1 1 {k} {bytes(16).hex()}", True, False)
    srv.replies.remember(inc.raw_key, None)
    srv._misses.append(inc)
    return inc


def datagram(box: BillingSandbox, k: int, account: str) -> bytes:
    """An authorization on the wire, identifier ``k``, for ``account``."""
    req = box.client("nextone").auth_packet(ident=k)
    req["User-Name"] = "NextoneUserA"
    req["NAS-IP-Address"] = "164.4.89.20"
    req["Called-Station-Id"] = "441259322891834"
    req["h323-conf-id"] = f"wire-{k}"
    req["Cisco-AVPair"] = [f"h323-ivr-out=PortaBilling_UserName:{account}",
                           "h323-ivr-out=PortaBilling_Ignore_Password:YES"]
    return bytes(req.RequestPacket())


def test_misses_are_read_together_then_each_decided_and_answered(server):
    srv, sink = server
    read: list[list[str]] = []
    prefetch = srv.engine.store.prefetch

    def counted(account_ids):  # type: ignore[no-untyped-def]
        ids = list(account_ids)
        read.append(ids)
        return prefetch(ids)

    srv.engine.store.prefetch = counted  # type: ignore[method-assign]
    incs = [miss(srv, sink, k, ACCOUNTS[k % 2]) for k in range(4)]
    assert not any(srv.engine.store.in_memory(a) for a in ACCOUNTS)
    srv._look_up_misses()
    assert read == [[inc.req.account_id for inc in incs]]  # one read for the batch
    assert all(srv.engine.store.in_memory(a) for a in ACCOUNTS)
    while srv.committer.run_once():
        pass
    assert srv.counters["access_accepts"] + srv.counters["access_rejects"] == 4
    replies = [sink.recv(4096) for _ in incs]
    assert sorted(r[1] for r in replies) == [0, 1, 2, 3]  # every one answered
    srv._look_up_misses()  # a job that finds none waiting has nothing to do
    assert len(read) == 1


def test_a_hung_database_drops_the_batch_at_once(tmp_path):
    """mariadbd SIGSTOPped while a batch of misses waits: the batch's one
    read times out, and every request of it goes unanswered (retries are
    new requests) without each being read again alone, a timeout each,
    in this one thread."""
    db = MariaDB("lookups-hung", server_id=9)
    db.start()
    try:
        db.create_database("billing")
        box = BillingSandbox(db.url("billing"), base=tmp_path / "vigil",
                             master="Query_Timeout_sec=1\n").prepare()
        with in_process_server(box) as (srv, sink):
            asked: list[str] = []
            find_account = srv.engine.store.find_account

            def spied(account_id):  # type: ignore[no-untyped-def]
                asked.append(account_id)
                return find_account(account_id)

            srv.engine.store.find_account = spied  # type: ignore[method-assign]
            incs = [miss(srv, sink, k, ACCOUNTS[k % 2]) for k in range(3)]
            assert db.proc is not None
            os.kill(db.proc.pid, signal.SIGSTOP)
            try:
                srv._look_up_misses()
            finally:
                os.kill(db.proc.pid, signal.SIGCONT)
            assert asked == []  # not each again, a timeout each
            assert srv.counters["db_errors"] == 3
            assert all(srv.replies.get(inc.raw_key) is None for inc in incs)
            assert srv.committer.backlog() == 0
            sink.settimeout(0.2)
            with pytest.raises(TimeoutError):
                sink.recv(4096)  # no answer: the gateway fails over
    finally:
        db.destroy()


def test_a_full_lookup_queue_drops_only_the_newest_miss_and_answers_the_rest(tmp_path, caplog):
    """More misses than the look-up queue holds (no worker running yet, as
    with a hung database): each one past the queue is dropped unanswered at
    once, counted, and forgotten by the reply cache (so its retransmission
    is a new request); the queued ones stay and are all answered once the
    workers run. The drop takes the newest miss only, never one a worker
    has already taken."""
    box = BillingSandbox(base=tmp_path / "vigil").prepare()
    with in_process_server(box) as (srv, sink):
        sink.settimeout(2.0)
        srv.workers = Workers(1, max_queue=3)  # not started: the queue fills
        for k in range(8):
            srv.handle(datagram(box, k, ACCOUNTS[k % 2]), sink.getsockname(), srv.auth_sock)
        assert srv.counters["dropped_overload"] == 5
        assert len(srv._misses) == 3
        assert len(srv.replies) == 3  # the dropped ones are not waited for
        assert [inc.pkt.id for inc in srv._misses] == [0, 1, 2]
        srv._flush_drops(force=True)
        told = [r.getMessage() for r in caplog.records if "overload" in r.getMessage()]
        # a summary, not a line per dropped request (a flood must not fill the disk)
        assert len(told) <= 2 and "5 overload" in told[-1], told
        for _ in range(3):  # the queued jobs: the first takes all three
            srv._look_up_misses()
        while srv.committer.run_once():
            pass
        answered = sorted(sink.recv(4096)[1] for _ in range(3))
        assert answered == [0, 1, 2]
        assert srv.counters["access_accepts"] + srv.counters["access_rejects"] == 3


def test_a_miss_a_worker_took_before_the_queue_refused_it_is_not_dropped(tmp_path):
    """The race the drop must lose gracefully: a worker takes the miss
    between the loop's append and the refused submit. The loop then drops
    nothing, since the worker answers it."""
    box = BillingSandbox(base=tmp_path / "vigil").prepare()
    with in_process_server(box) as (srv, sink):
        sink.settimeout(2.0)
        taken: list[Incoming] = []

        class RefusingWorkers(Workers):
            def submit(self, job):  # type: ignore[no-untyped-def]
                with srv._misses_lock:  # a worker empties the deque first
                    taken.extend(srv._misses)
                    srv._misses.clear()
                return False

        srv.workers = RefusingWorkers(1)
        srv.handle(datagram(box, 7, ACCOUNTS[1]), sink.getsockname(), srv.auth_sock)
        assert len(taken) == 1 and srv.counters["dropped_overload"] == 0
        assert srv.replies.get(taken[0].raw_key) == (True, None)  # still waited for


def test_only_requests_whose_account_is_not_in_memory_count_as_look_ups(tmp_path):
    """``account_lookups``: what tells whether a warm-up reached every
    process (each caches only what its own sockets bring). A request
    decided from memory is not one."""
    box = BillingSandbox(base=tmp_path / "vigil").prepare()
    with in_process_server(box) as (srv, sink):
        sink.settimeout(2.0)
        srv.workers = Workers(1)  # not started: the test runs the job
        srv.handle(datagram(box, 1, ACCOUNTS[0]), sink.getsockname(), srv.auth_sock)
        assert srv.counters["account_lookups"] == 1
        srv._look_up_misses()
        while srv.committer.run_once():
            pass
        assert sink.recv(4096)[1] == 1
        srv.handle(datagram(box, 2, ACCOUNTS[0]), sink.getsockname(), srv.auth_sock)
        while srv.committer.run_once():
            pass
        assert sink.recv(4096)[1] == 2  # answered, decided from memory
        assert srv.counters["account_lookups"] == 1
        assert not srv._misses
