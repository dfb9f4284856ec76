"""Calls in progress over the wire: real `radclient` against `vigil radiusd`,
and `vigil calls disconnect` against a real RFC 5176 listener on loopback
(pyrad's packet code answering on a UDP socket in the test)."""

from __future__ import annotations

import datetime as dt
import itertools
import json
import select as select_mod
import shutil
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from pyrad import packet as rp
from sqlalchemy import update

from billing import models as m
from billing.calls import list_calls
from billing.db import engine_for_url
from billing.provision import apply_document
from billing.server import load_dictionary
from billing.store import AccountingOp, OpKind, SqlStore
from billing.testing import BillingSandbox

pytestmark = pytest.mark.integration  # a live engine, real Disconnect-Requests

ROOT = Path(__file__).resolve().parents[2]
DEMO = ROOT / "etc" / "demo"
AUTHZ = (DEMO / "nextone-2-authorization.txt").read_text()
STOP = (DEMO / "nextone-3-stop-originate.txt").read_text()
START = STOP.replace("Acct-Status-Type = Stop", "Acct-Status-Type = Start").replace(
    "Acct-Session-Time = 180\n", "")
CALL = "4985ee3f-3ed46e60@192.168.0.31"
ACCOUNT = "193.100.201.1"
NO_FRAUD = "[Fraud_Detection]\nActive=No\n"
SHORT_CREDIT = "Max_Credit_Time_sec=60\n"  # [Radius]: funds for all, only the limit refuses

_files = itertools.count()
needs_radclient = pytest.mark.skipif(shutil.which("radclient") is None,
                                     reason="radclient missing: run `make setup`")


def radclient(box: BillingSandbox, kind: str, body: str, parallel: int = 1
              ) -> subprocess.Popen[str]:
    secret_file = box.base / "secret-nextone"
    secret_file.write_text("nextone\n")
    secret_file.chmod(0o600)
    port = box.auth_port if kind == "auth" else box.acct_port
    # from a file, so that several senders can be under way at once
    requests = box.base / f"requests-{next(_files)}.txt"
    requests.write_text(body)
    return subprocess.Popen(
        # retries as a gateway would: a busy shared machine may lose a first reply
        ["radclient", "-d", str(ROOT / "etc" / "radius"), "-x", "-r", "3", "-t", "5",
         "-p", str(parallel), "-f", str(requests), "-S", str(secret_file),
         f"127.0.0.1:{port}", kind],
        stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def output(p: subprocess.Popen[str]) -> str:
    out, err = p.communicate(timeout=60)
    return out + err


def calls_now(url: str) -> dict[str, Any]:
    e = engine_for_url(url)
    try:
        with e.connect() as c:
            return {x.call_id: x for x in list_calls(c)}
    finally:
        e.dispose()


def with_limit(url: str, max_calls: int) -> None:
    e = engine_for_url(url)
    with e.begin() as c:
        c.execute(update(m.Account).where(m.Account.account_id == ACCOUNT).values(
            balance=Decimal("20")))
        c.execute(update(m.Customer).where(m.Customer.name == "testgatewayprepaid").values(
            max_calls=max_calls))
    e.dispose()


def authorization(conf: str) -> str:
    return AUTHZ.replace(CALL, conf)


# ------------------------------------------------------- starts and stops
@needs_radclient
def test_starts_are_listed_and_stops_remove_them(sandbox):
    assert "Access-Accept" in output(radclient(sandbox, "auth", AUTHZ))
    assert "Accounting-Response" in output(radclient(sandbox, "acct", START))
    listed = json.loads(sandbox.vigil("calls", "list", "--json").stdout)
    assert [c["call_id"] for c in listed] == [CALL]
    call = listed[0]
    assert call["credit_time"] == 180 and call["answered"] and call["authorized"]
    assert Decimal(call["reserved"]) == Decimal("0.87")
    assert (call["account"], call["customer"], call["node"]) == (
        ACCOUNT, "testgatewayprepaid", "NexTone")
    assert call["duration"] >= 0
    # what a forced disconnect would name: the node's own ids for the leg it reported
    shown = sandbox.vigil("calls", "disconnect", CALL, "--dry-run").stdout
    assert "Acct-Session-Id = 56eb" in shown
    assert "h323-conf-id = 1043-3366331310-596453@ssl.supertelecom.net" in shown
    assert f"h323-incoming-conf-id = {CALL}" in shown and "NAS-IP-Address = 164.4.89.20" in shown
    text = sandbox.vigil("calls", "list", "--customer", "testgatewayprepaid").stdout
    assert CALL in text and "1 calls in progress" in text
    assert json.loads(sandbox.vigil("calls", "list", "--node", "elsewhere", "--json").stdout
                      ) == []
    assert "Accounting-Response" in output(radclient(sandbox, "acct", STOP))
    assert calls_now(sandbox.db_url) == {}
    assert "no calls in progress" in sandbox.vigil("calls", "list").stdout
    # the gateway retransmits the Start late: the call stays ended
    assert "Accounting-Response" in output(radclient(sandbox, "acct", START))
    assert calls_now(sandbox.db_url) == {}
    assert "for a call already ended" in sandbox.log_text()


# ------------------------------------------------- concurrent-call limits
@needs_radclient
def test_third_of_three_simultaneous_calls_refused(db_url, tmp_path):
    box = BillingSandbox(db_url, base=tmp_path / "e", extra=NO_FRAUD,
                         radius=SHORT_CREDIT).prepare()
    with_limit(db_url, 2)
    try:
        box.start()
        body = "\n".join(authorization(f"lim-{i}") for i in range(3))
        out = output(radclient(box, "auth", body, parallel=3))  # all three in flight at once
    finally:
        box.stop()
    assert out.count("Received Access-Accept") == 2, out
    assert out.count("Received Access-Reject") == 1, out
    assert 'h323-return-code = "3"' in out
    assert len(calls_now(db_url)) == 2
    assert "concurrent-call limit" in box.log_text()


@needs_radclient
@pytest.mark.integration  # the store on a throw-away MariaDB
def test_limit_holds_across_two_engines(mariadb_database, tmp_path):
    a = BillingSandbox(mariadb_database, base=tmp_path / "a", extra=NO_FRAUD,
                       radius=SHORT_CREDIT).prepare()
    b = BillingSandbox(mariadb_database, base=tmp_path / "b", extra=NO_FRAUD, provision=None,
                       radius=SHORT_CREDIT)
    with_limit(mariadb_database, 2)
    try:
        a.start()
        b.start()
        senders = [radclient(a, "auth", authorization("two-0")),
                   radclient(b, "auth", authorization("two-1")),
                   radclient(a, "auth", authorization("two-2")),
                   radclient(b, "auth", authorization("two-3"))]
        out = "".join(output(p) for p in senders)
    finally:
        a.stop()
        b.stop()
    assert out.count("Received Access-Accept") == 2, out + a.log_text()[-3000:]
    assert out.count("Received Access-Reject") == 2, out + b.log_text()[-3000:]
    assert len(calls_now(mariadb_database)) == 2


# ------------------------------------------------------------- lifetimes
@needs_radclient
def test_a_call_whose_stop_never_comes_disappears(tmp_path):
    box = BillingSandbox(None, base=tmp_path / "e", extra=(
        "[Call_Cleanup]\nRadius_Retransmits=1\nRadius_Timeout=1\nAlive_Interval=2\n"
        "Default_Lifetime=2\n"))
    with box:
        assert "Accounting-Response" in output(radclient(box, "acct", START))
        assert CALL in calls_now(box.db_url)
        deadline = time.monotonic() + 30
        while CALL in calls_now(box.db_url):
            assert time.monotonic() < deadline, "the call outlived its lifetime"
            time.sleep(0.2)
    assert "without a prior authorization" in box.log_text()
    assert f"call {CALL} forgotten: no Stop within its lifetime" in box.log_text()


# ------------------------------------------------------ forced disconnect
class DisconnectListener:
    """An RFC 5176 listener: decodes each Disconnect-Request with pyrad,
    checks its authenticator, and answers what ``answer(n)`` says for the
    n-th request (a code and an Error-Cause, or None for silence)."""

    def __init__(self, secret: str,
                 answer: Callable[[int], tuple[int, int | None] | None]) -> None:
        self.secret = secret.encode()
        self.answer = answer
        self.dictionary = load_dictionary()
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.2", 0))
        self.port = self.sock.getsockname()[1]
        self.received: list[dict[str, Any]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            ready, _, _ = select_mod.select([self.sock], [], [], 0.05)
            if not ready:
                continue
            raw, addr = self.sock.recvfrom(4096)
            req = rp.CoAPacket(packet=raw, secret=self.secret, dict=self.dictionary)
            self.received.append({
                "code": req.code, "id": req.id, "authenticator": req.authenticator,
                "verified": req.VerifyCoARequest(),
                "attributes": {k: list(req[k]) for k in req.keys()}})
            decision = self.answer(len(self.received))
            if decision is None:
                continue
            reply = req.CreateReply()
            reply.code = decision[0]
            if decision[1] is not None:
                reply["Error-Cause"] = decision[1]
            self.sock.sendto(reply.ReplyPacket(), addr)

    def __enter__(self) -> DisconnectListener:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(5)
        self.sock.close()


DM_SECRET = "dm-s3cret"


@pytest.fixture
def prepared(tmp_path) -> Iterator[BillingSandbox]:
    """A configured, provisioned database with one call in progress on a
    node at 127.0.0.2 (no engine needed to disconnect)."""
    box = BillingSandbox(None, base=tmp_path / "e").prepare()
    yield box


def put_call(box: BillingSandbox, port: int, conf: str = "dm-call-1") -> None:
    e = engine_for_url(box.db_url)
    apply_document(e, {"nodes": [{"name": "DM", "nas_ip": "127.0.0.2",
                                  "radius_secret": DM_SECRET, "disconnect_port": port}]})
    now = dt.datetime.now(dt.UTC).replace(tzinfo=None)
    SqlStore(e).apply([AccountingOp(
        session_key=f"start|{conf}", kind=OpKind.START, call_key=conf, leg="originate",
        node_ip="127.0.0.2", cli="4202111222", cld="59322891834", session_id="77ab",
        user_name="4202111222", expires_at=now + dt.timedelta(hours=1))], now)
    e.dispose()


def disconnect(box: BillingSandbox, *args: str) -> subprocess.CompletedProcess[str]:
    return box.vigil("calls", "disconnect", *args, check=False)


def test_disconnect_acknowledged(prepared):
    with DisconnectListener(DM_SECRET, lambda n: (rp.DisconnectACK, None)) as node:
        put_call(prepared, node.port)
        r = disconnect(prepared, "dm-call-1", "--json")
    assert r.returncode == 0, r.stdout + r.stderr
    out = json.loads(r.stdout)
    assert out["result"] == "ack" and out["node"] == "DM" and out["port"] == node.port
    [req] = node.received
    assert req["code"] == rp.DisconnectRequest and req["verified"]
    attrs = req["attributes"]
    assert attrs["Acct-Session-Id"] == ["77ab"] and attrs["h323-conf-id"] == ["dm-call-1"]
    assert attrs["User-Name"] == ["4202111222"] and attrs["NAS-IP-Address"] == ["127.0.0.2"]
    assert attrs["Calling-Station-Id"] == ["4202111222"]
    assert attrs["Called-Station-Id"] == ["59322891834"]
    assert abs(attrs["Event-Timestamp"][0] - time.time()) < 60
    assert "h323-conf-id=dm-call-1" in attrs["Cisco-AVPair"]
    log = prepared.log_text()
    assert "Disconnect-ACK" in log and DM_SECRET not in log + r.stdout + r.stderr


def test_disconnect_refused_with_its_error_cause(prepared):
    with DisconnectListener(DM_SECRET, lambda n: (rp.DisconnectNAK, 503)) as node:
        put_call(prepared, node.port)
        r = disconnect(prepared, "dm-call-1")
    assert r.returncode == 1, r.stdout + r.stderr
    assert "Disconnect-NAK: 503 Session Context Not Found" in r.stdout
    assert "Disconnect-NAK: 503 Session Context Not Found" in prepared.log_text()


def test_disconnect_retransmitted_identically_until_answered(prepared):
    def answer(n: int) -> tuple[int, int | None] | None:
        return None if n < 3 else (rp.DisconnectACK, None)  # the third send is answered

    with DisconnectListener(DM_SECRET, answer) as node:
        put_call(prepared, node.port)
        r = disconnect(prepared, "dm-call-1", "--timeout", "0.3", "--retries", "3")
    assert r.returncode == 0, r.stdout + r.stderr
    assert len(node.received) == 3
    assert len({(q["id"], q["authenticator"]) for q in node.received}) == 1


def test_disconnect_to_a_node_that_never_answers(prepared):
    with DisconnectListener(DM_SECRET, lambda n: None) as node:
        put_call(prepared, node.port)
        r = disconnect(prepared, "dm-call-1", "--timeout", "0.2", "--retries", "2", "--json")
    assert r.returncode == 3, r.stdout + r.stderr
    assert json.loads(r.stdout)["result"] == "timeout"
    assert len(node.received) == 2
    assert "no answer after 2 attempts" in prepared.log_text()


def test_disconnect_to_a_port_where_nothing_listens(prepared):
    with DisconnectListener(DM_SECRET, lambda n: None) as node:
        port = node.port
    put_call(prepared, port)  # the listener is gone: ICMP port unreachable
    r = disconnect(prepared, "dm-call-1", "--timeout", "2", "--json")
    assert r.returncode == 3, r.stdout + r.stderr
    out = json.loads(r.stdout)
    assert out["result"] == "unreachable" and "port unreachable" in out["text"]


def test_disconnect_for_a_call_that_just_ended(prepared):
    with DisconnectListener(DM_SECRET, lambda n: (rp.DisconnectACK, None)) as node:
        put_call(prepared, node.port)
        e = engine_for_url(prepared.db_url)
        now = dt.datetime.now(dt.UTC).replace(tzinfo=None)
        SqlStore(e).apply([AccountingOp(session_key="stop|dm-call-1", kind=OpKind.STOP,
                                        call_key="dm-call-1", leg="originate",
                                        forget_at=now + dt.timedelta(seconds=15))], now)
        e.dispose()
        r = disconnect(prepared, "dm-call-1")
        assert r.returncode == 4 and "ended at" in r.stderr, r.stdout + r.stderr
        r = disconnect(prepared, "never-was")
        assert r.returncode == 4 and "unknown call" in r.stderr
    assert node.received == []


def test_disconnect_dry_run_and_usage(prepared):
    with DisconnectListener(DM_SECRET, lambda n: (rp.DisconnectACK, None)) as node:
        put_call(prepared, node.port)
        r = disconnect(prepared, "dm-call-1", "--dry-run")
        assert r.returncode == 0 and "Acct-Session-Id = 77ab" in r.stdout
        assert disconnect(prepared, "dm-call-1", "--retries", "0").returncode == 2
        assert disconnect(prepared).returncode == 2
    assert node.received == []
