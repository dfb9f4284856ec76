"""Hostile RADIUS datagrams of every class, for the live fuzz test and the
bench: truncated attributes, length fields that lie, bad codes, oversize,
bad authenticators, unknown NAS, mutated valid packets, random bytes.

Mutated packets are made from authenticated ones (Accounting-Requests, and
Access-Requests carrying a Message-Authenticator), so every mutation is
detectable by a correct server. Knows no room: the caller passes the pyrad
dictionary and the secret; only pyrad is used.
"""

from __future__ import annotations

import random
import socket
import struct
import time

from pyrad import packet as rp
from pyrad.dictionary import Dictionary

# The issue 9 datagram: NAS-IP-Address runs past the end of the packet.
CRAFTED = bytes.fromhex("01070018") + bytes(16) + bytes.fromhex("04067f00")


def access_request(d: Dictionary, secret: bytes, conf: str, nas: str,
                   user: str = "NextoneUserA", account: str = "193.100.201.1",
                   ma: bool = False) -> bytes:
    pkt = rp.AuthPacket(secret=secret, dict=d)
    pkt["NAS-IP-Address"] = nas
    pkt["User-Name"] = user
    pkt["Called-Station-Id"] = "441259322891834"
    pkt["Calling-Station-Id"] = account
    pkt["h323-conf-id"] = conf
    pkt["User-Password"] = pkt.PwCrypt("Nextone")
    pkt["Cisco-AVPair"] = [f"h323-ivr-out=PortaBilling_UserName:{account}",
                           "h323-ivr-out=PortaBilling_Ignore_Password:YES"]
    if ma:
        pkt.add_message_authenticator()
    return bytes(pkt.RequestPacket())


def fill_stop(pkt: rp.AcctPacket, conf: str, nas: str, account: str = "193.100.201.1",
              seconds: int = 60, called: str = "59322891834") -> rp.AcctPacket:
    """``pkt`` made the Stop a Nextone gateway sends for a call of ``seconds``
    (the demo's account and destination unless told otherwise)."""
    pkt["NAS-IP-Address"] = nas
    pkt["Acct-Status-Type"] = "Stop"
    pkt["Called-Station-Id"] = called
    pkt["Calling-Station-Id"] = account
    pkt["Acct-Session-Id"] = conf
    pkt["Acct-Session-Time"] = seconds
    pkt["h323-conf-id"] = conf
    pkt["h323-call-origin"] = "originate"
    pkt["h323-remote-address"] = "65.218.170.184"
    pkt["Cisco-AVPair"] = [f"h323-ivr-out=PortaBilling_UserName:{account}"]
    return pkt


def accounting_stop(d: Dictionary, secret: bytes, conf: str, nas: str,
                    account: str = "193.100.201.1") -> bytes:
    return bytes(fill_stop(rp.AcctPacket(secret=secret, dict=d), conf, nas, account)
                 .RequestPacket())


class Fuzzer:
    def __init__(self, d: Dictionary, secret: bytes, nas: str, seed: int = 9) -> None:
        self.d, self.secret, self.nas = d, secret, nas
        self.rnd = random.Random(seed)
        self.acct_pool = [accounting_stop(d, secret, f"fz-{i}\n\x1b[31m", nas)
                          for i in range(20)]
        self.auth_pool = [access_request(d, secret, f"fz-{i}", nas, ma=True) for i in range(20)]
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
        codes = [0, 2, 3, 5, 11, 12, 40, 255, 4 if is_auth else 1]
        return bytes([self.rnd.choice(codes)]) + raw[1:]

    def oversize(self, is_auth: bool) -> bytes:
        raw = self.base(is_auth)
        size = self.rnd.choice([4097, 5000, 9000])
        return raw[:2] + struct.pack("!H", min(size, 0xFFFF)) + raw[4:] + bytes(size - len(raw))

    def bad_authenticator(self, is_auth: bool) -> bytes:
        conf = f"bad-{self.rnd.randrange(10**6)}"
        if is_auth:
            return access_request(self.d, b"wrong", conf, self.nas, ma=True)
        return accounting_stop(self.d, b"wrong", conf, self.nas)

    def unknown_nas(self, is_auth: bool) -> bytes:
        nas = f"10.{self.rnd.randrange(256)}.{self.rnd.randrange(256)}.1"
        if is_auth:
            return access_request(self.d, self.secret, "unknown", nas)
        return accounting_stop(self.d, self.secret, "unknown", nas)

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


def ask(sock: socket.socket, data: bytes, addr: tuple[str, int], tries: int = 3,
        timeout: float = 2.0) -> bytes | None:
    """Send a request and wait for the reply with its identifier; retries."""
    ident = data[1]
    for _ in range(tries):
        sock.sendto(data, addr)
        deadline = time.monotonic() + timeout
        while (left := deadline - time.monotonic()) > 0:
            sock.settimeout(left)
            try:
                reply = sock.recv(4096)
            except TimeoutError:
                break
            if len(reply) >= 20 and reply[1] == ident:
                return reply
    return None
