"""A running `vigil radiusd` under a burst of hostile datagrams (issue 9).

More than 20,000 malformed datagrams of every class (truncated attributes,
length fields that lie, bad codes, oversize, bad authenticators, unknown
NAS, mutated valid packets, random bytes) at the auth and acct ports, with
valid requests interleaved. The engine must stay up, answer the valid ones,
write no traceback and only a bounded number of log lines.
"""

from __future__ import annotations

import json
import random
import socket
import struct
import time

from pyrad import packet as rp

from billing.server import load_dictionary
from vigil.testing.engine import BillingSandbox

SECRET = b"nextone"
NAS = "164.4.89.20"
DICT = load_dictionary()
CRAFTED = bytes.fromhex("01070018") + bytes(16) + bytes.fromhex("04067f00")
FUZZ_TOTAL = 21_000
BURST = 100  # fuzz datagrams between two valid requests


def authz(conf: str, secret: bytes = SECRET, nas: str = NAS, ma: bool = False) -> bytes:
    pkt = rp.AuthPacket(secret=secret, dict=DICT)
    pkt["NAS-IP-Address"] = nas
    pkt["User-Name"] = "NextoneUserA"
    pkt["Called-Station-Id"] = "441259322891834"
    pkt["Calling-Station-Id"] = "193.100.201.1"
    pkt["h323-conf-id"] = conf
    pkt["User-Password"] = pkt.PwCrypt("Nextone")
    pkt["Cisco-AVPair"] = ["h323-ivr-out=PortaBilling_UserName:193.100.201.1",
                           "h323-ivr-out=PortaBilling_Ignore_Password:YES"]
    if ma:
        pkt.add_message_authenticator()
    return pkt.RequestPacket()


def acct(conf: str, secret: bytes = SECRET, nas: str = NAS) -> bytes:
    pkt = rp.AcctPacket(secret=secret, dict=DICT)
    pkt["NAS-IP-Address"] = nas
    pkt["Acct-Status-Type"] = "Stop"
    pkt["Called-Station-Id"] = "59322891834"
    pkt["Calling-Station-Id"] = "193.100.201.1"
    pkt["Acct-Session-Id"] = conf
    pkt["Acct-Session-Time"] = 60
    pkt["h323-conf-id"] = conf
    pkt["h323-call-origin"] = "originate"
    pkt["h323-remote-address"] = "65.218.170.184"
    pkt["Cisco-AVPair"] = ["h323-ivr-out=PortaBilling_UserName:193.100.201.1"]
    return pkt.RequestPacket()


class Fuzzer:
    """Every class of bad datagram, built from a small pool of real packets.
    Mutated packets are authenticated ones (Accounting-Requests, and
    Access-Requests with a Message-Authenticator), so a mutation is always
    detectable: what reaches the engine is only what a valid client sent."""

    def __init__(self, seed: int) -> None:
        self.rnd = random.Random(seed)
        self.acct_pool = [acct(f"fz-{i}\n\x1b[31m") for i in range(20)]
        self.auth_pool = [authz(f"fz-{i}", ma=True) for i in range(20)]
        self.classes = [self.truncated_attr, self.length_lies, self.bad_code, self.oversize,
                        self.bad_authenticator, self.unknown_nas, self.mutated, self.mutated,
                        self.random_bytes]

    def base(self, is_auth: bool) -> bytes:
        return self.rnd.choice(self.auth_pool if is_auth else self.acct_pool)

    def truncated_attr(self, is_auth: bool) -> bytes:
        if self.rnd.random() < 0.3:
            return bytes([1 if is_auth else 4]) + CRAFTED[1:]
        raw = self.base(is_auth)
        cut = self.rnd.randrange(21, len(raw))
        return raw[:2] + struct.pack("!H", cut) + raw[4:cut]

    def length_lies(self, is_auth: bool) -> bytes:
        raw = self.base(is_auth)
        lie = self.rnd.choice([0, 1, 19, len(raw) + 1, len(raw) + 300, 4097, 0xFFFF])
        return raw[:2] + struct.pack("!H", lie) + raw[4:]

    def bad_code(self, is_auth: bool) -> bytes:
        raw = self.base(self.rnd.random() < 0.5)
        return bytes([self.rnd.choice([0, 2, 3, 5, 11, 12, 40, 255] + [4 if is_auth else 1])]) \
            + raw[1:]

    def oversize(self, is_auth: bool) -> bytes:
        raw = self.base(is_auth)
        size = self.rnd.choice([4097, 5000, 9000])
        return raw[:2] + struct.pack("!H", min(size, 0xFFFF)) + raw[4:] + bytes(size - len(raw))

    def bad_authenticator(self, is_auth: bool) -> bytes:
        n = self.rnd.randrange(10**6)
        return authz(f"bad-{n}", b"wrong", ma=True) if is_auth else acct(f"bad-{n}", b"wrong")

    def unknown_nas(self, is_auth: bool) -> bytes:
        nas = f"10.{self.rnd.randrange(256)}.{self.rnd.randrange(256)}.1"
        return authz("unknown", nas=nas) if is_auth else acct("unknown", nas=nas)

    def mutated(self, is_auth: bool) -> bytes:
        data = bytearray(self.base(is_auth))
        for _ in range(self.rnd.randint(1, 4)):
            pos = self.rnd.randrange(len(data))
            op = self.rnd.random()
            if op < 0.6:
                data[pos] ^= self.rnd.randrange(1, 256)  # always a change
            elif op < 0.8:
                data[pos:pos] = self.rnd.randbytes(self.rnd.randint(1, 6))
            else:
                del data[pos:pos + self.rnd.randint(1, 6)]
        if bytes(data) in self.acct_pool or bytes(data) in self.auth_pool:
            data[0] ^= 0x80
        return bytes(data)

    def random_bytes(self, is_auth: bool) -> bytes:
        return self.rnd.randbytes(self.rnd.randrange(0, 200))

    def next(self, is_auth: bool) -> bytes:
        return self.rnd.choice(self.classes)(is_auth)


def ask(sock: socket.socket, data: bytes, port: int, tries: int = 3) -> bytes | None:
    ident = data[1]
    for _ in range(tries):
        sock.sendto(data, ("127.0.0.1", port))
        deadline = time.monotonic() + 2.0
        while (left := deadline - time.monotonic()) > 0:
            sock.settimeout(left)
            try:
                reply = sock.recv(4096)
            except TimeoutError:
                break
            if len(reply) >= 20 and reply[1] == ident:
                return reply
    return None


def test_a_burst_of_hostile_datagrams_leaves_the_engine_up_answering_and_quiet(tmp_path):
    with BillingSandbox(base=tmp_path / "engine") as box:
        proc = box.proc
        assert proc is not None
        start_lines = len(box.log_text().splitlines())
        fuzz = Fuzzer(seed=9)
        valid = answered = sent = 0
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as bad, \
                socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as good:
            # The one-datagram kill, first, at both ports.
            bad.sendto(CRAFTED, ("127.0.0.1", box.auth_port))
            bad.sendto(b"\x04" + CRAFTED[1:], ("127.0.0.1", box.acct_port))
            sent += 2
            started = time.monotonic()
            i = 0
            while sent < FUZZ_TOTAL:
                for _ in range(BURST):
                    is_auth = fuzz.rnd.random() < 0.5
                    data = fuzz.next(is_auth)
                    bad.sendto(data, ("127.0.0.1", box.auth_port if is_auth else box.acct_port))
                    sent += 1
                i += 1
                is_auth = i % 2 == 0
                # a conf-id that tries to forge a log line: escaped, not obeyed
                conf = f"valid-{i}" if is_auth else f"valid-{i}\n2026 FORGED\x1b[31m"
                request = authz(conf) if is_auth else acct(conf)
                reply = ask(good, request, box.auth_port if is_auth else box.acct_port)
                valid += 1
                if reply is not None:
                    expected = (rp.AccessAccept, rp.AccessReject) if is_auth else (
                        rp.AccountingResponse,)
                    assert reply[0] in expected
                    answered += 1
            elapsed = time.monotonic() - started
        assert proc.poll() is None, "the engine died"
        assert box.selftest(timeout=2)
        print(f"\n{sent} hostile datagrams and {valid} valid requests in {elapsed:.1f} s; "
              f"{answered} answered")
        assert answered >= 0.95 * valid
        # counted for the radius_drops plugin (the stats file is rewritten every second)
        stats_path = box.state / "radiusd-stats.json"
        deadline = time.monotonic() + 10
        dropped = 0
        while time.monotonic() < deadline:
            stats = json.loads(stats_path.read_text()) if stats_path.exists() else {}
            dropped = sum(v for k, v in stats.items() if k.startswith("dropped_"))
            if dropped >= 0.95 * sent:
                break
            time.sleep(0.2)
        assert dropped >= 0.95 * sent, stats
        assert stats.get("dropped_internal_error", 0) == 0, stats
        assert box.stop() == 0
        log = box.log_text()
        stderr = (box.base / "radiusd.stderr").read_text()
        assert "Traceback" not in log and "Traceback" not in stderr
        lines = log.splitlines()[start_lines:]
        # valid requests log their call (conf=valid-N); everything else is
        # what the hostile traffic cost in log lines
        other = [ln for ln in lines if "conf=valid-" not in ln]
        print(f"{len(lines)} log lines, {len(other)} not about a valid call")
        assert len(other) <= 300, "\n".join(other[:50])
        summaries = [ln for ln in other if "packets from 127.0.0.1" in ln]
        assert summaries and "malformed" in summaries[0]
        assert all("\x1b" not in ln for ln in lines)
