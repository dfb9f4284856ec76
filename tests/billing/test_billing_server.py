"""The RADIUS server's edges, on the wire: malformed packets, retransmissions,
a database that goes away, SIGHUP and SIGTERM. A real `vigil radiusd` process."""

from __future__ import annotations

import json
import signal
import socket
import time
from decimal import Decimal

import pytest
from pyrad import packet as rp
from sqlalchemy import func, select

from billing import models as m
from billing.db import engine_for_url
from billing.testing import BillingSandbox
from vigil.radius_client import RadiusTimeout, Timeouts
from vigil.testing.mariadb import MariaDB
from vigil.testing.radius_fuzz import fill_stop
from vigil.testing.wait import wait_until

pytestmark = pytest.mark.integration  # real processes: vigil commands, servers, plugins


def stop_packet(box: BillingSandbox, conf: str = "o-1", secret: str = "nextone"):
    c = box.client(secret)
    return c, fill_stop(c.acct_packet(), conf, "164.4.89.20", seconds=180)


def xdr_count(box: BillingSandbox) -> tuple[int, Decimal]:
    e = engine_for_url(box.db_url)
    with e.connect() as conn:
        n, s = conn.execute(select(func.count(), func.coalesce(func.sum(m.AccountXDR.amount), 0))
                            ).one()
    e.dispose()
    return n, Decimal(s)


def stats(box: BillingSandbox) -> dict:
    """The counters as of now: the first stats file written after this call
    (Stats_Interval_sec=1 in the sandbox; written by an atomic rename)."""
    path, asked = box.state / "radiusd-stats.json", time.time()
    wait_until(lambda: path.exists() and path.stat().st_mtime > asked, 10,
               what="the engine rewrote its stats file")
    return json.loads(path.read_text())


@pytest.fixture
def box(tmp_path):
    with BillingSandbox(base=tmp_path / "engine") as b:
        yield b


def udp(box: BillingSandbox, data: bytes, port: int | None = None) -> bytes | None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.settimeout(0.5)
        s.sendto(data, ("127.0.0.1", port or box.acct_port))
        try:
            return s.recv(4096)
        except TimeoutError:
            return None


def test_malformed_and_truncated_packets_are_dropped_and_the_server_lives(box):
    c, req = stop_packet(box)
    good = req.RequestPacket()
    bad = [b"", b"\x04", good[:19], good[:30],  # truncated
           good[:2] + b"\xff\xff" + good[4:],  # length larger than the datagram
           good[:20] + b"\x01\x00" + good[22:],  # attribute length 0
           good[:20] + b"\x01\x01" + good[22:],  # attribute length 1
           b"\x63" + good[1:],  # unknown code
           bytes(range(256)) * 4]
    for data in bad:
        assert udp(box, data) is None
        assert udp(box, data, box.auth_port) is None
    assert box.proc is not None and box.proc.poll() is None
    assert box.selftest()
    s = stats(box)
    assert s["dropped_malformed"] + s["dropped_bad_authenticator"] >= len(bad)
    assert xdr_count(box) == (0, Decimal(0))


def test_retransmission_gets_the_same_answer_and_one_charge(box):
    c, req = stop_packet(box)
    data = req.RequestPacket()
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:  # same source port
        s.settimeout(2)
        s.sendto(data, ("127.0.0.1", box.acct_port))
        first = s.recv(4096)
        s.sendto(data, ("127.0.0.1", box.acct_port))
        second = s.recv(4096)
    assert first == second
    assert udp(box, data) is not None  # from another port: a duplicate, still one charge
    assert xdr_count(box) == (1, Decimal("0.57"))
    st = stats(box)
    assert (st["retransmissions"], st["accounting_duplicates"]) == (1, 1)


def test_unknown_attributes_are_carried_not_fatal(box):
    c, req = stop_packet(box)
    req[26] = [b"\x00\x00\x99\x99\x01\x05abc"]  # a vendor nobody knows
    data = req.RequestPacket()
    assert udp(box, data) is not None
    assert xdr_count(box) == (1, Decimal("0.57"))


def test_database_gone_means_no_answer_then_exactly_one_charge(tmp_path):
    db = MariaDB("gone", server_id=7)
    db.start()
    try:
        db.create_database("billing")
        with BillingSandbox(db.url("billing"), base=tmp_path / "engine") as box:
            c, req = stop_packet(box)
            db.kill()
            with pytest.raises(RadiusTimeout):
                c.send(req, Timeouts(1.0, 1))  # nothing is acknowledged that is not stored
            assert "no answer" in box.log_text() or "not acknowledged" in box.log_text()
            db.start()
            assert c.send(req, Timeouts(2.0, 3)).code == rp.AccountingResponse
            # a late retransmission
            assert c.send(req, Timeouts(2.0, 3)).code == rp.AccountingResponse
            assert xdr_count(box) == (1, Decimal("0.57"))
            assert stats(box)["db_errors"] >= 1
    finally:
        db.destroy()


def test_sighup_reloads_nodes_and_sigterm_exits_cleanly(box, tmp_path):
    new_node = tmp_path / "node.yaml"
    new_node.write_text("nodes:\n  - {name: GW2, nas_ip: 10.20.30.40, radius_source_ip: "
                        "127.0.0.1, radius_secret: gw2secret}\n")

    def ask() -> bool:
        c = box.client("gw2secret", timeout=0.5, retries=1)
        req = c.auth_packet()
        req["User-Name"] = "193.100.201.1"
        req["NAS-IP-Address"] = "10.20.30.40"
        try:
            return c.send(req) is not None
        except RadiusTimeout:
            return False

    assert not ask()
    box.vigil("provision", str(new_node))
    box.signal(signal.SIGHUP)
    wait_until(ask, 5, 0.2, what="the reloaded engine knows the new node")
    assert "SIGHUP: reloading nodes" in box.log_text()
    assert box.stop() == 0
    assert "RADIUS engine stopping" in box.log_text()


def test_concurrent_authorizations_never_promise_the_same_money(tmp_path):
    """Twenty calls at once on one debit account (1.02 USD, 0.29/min): the
    credit times granted together never cost more than the balance."""
    from concurrent.futures import ThreadPoolExecutor
    from decimal import Decimal as D

    box = BillingSandbox(base=tmp_path / "engine", extra="[Fraud_Detection]\nActive=No\n")
    with box:
        def authorize(i: int) -> int:
            c = box.client("nextone", timeout=2, retries=2)
            req = c.auth_packet()
            req["User-Name"] = "NextoneUserA"
            req["NAS-IP-Address"] = "164.4.89.20"
            req["Called-Station-Id"] = "441259322891834"
            req["h323-conf-id"] = f"parallel-{i}"
            req["Cisco-AVPair"] = ["h323-ivr-out=PortaBilling_UserName:193.100.201.1",
                                   "h323-ivr-out=PortaBilling_Ignore_Password:YES"]
            reply = c.send(req).packet
            if reply.code != rp.AccessAccept:
                return 0
            return int(reply["h323-credit-time"][0])

        with ThreadPoolExecutor(10) as pool:
            granted = list(pool.map(authorize, range(20)))
    minutes = sum(g // 60 for g in granted)
    assert minutes * D("0.29") <= D("1.02")
    assert sorted(granted, reverse=True)[:1] == [180]  # the first call got the whole 3 min
