"""Live fuzz of Vigil's NSCA-NG side: a hostile TLS-PSK server answers the relay.

Vigil has no NSCA-NG server of its own; what it decodes from NSCA-NG is the
server's replies. A server that speaks garbage, sends endless lines, closes
mid-session, refuses or bails out, cycling through those, must never crash
the relay's worker or lose a result: every record reaches the command lines
the server's honest sessions accepted, and no traceback is logged.
"""

from __future__ import annotations

import contextlib
import logging
import os
import random
import socket
import struct
import threading
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.bindings.openssl.binding import Binding
from OpenSSL import SSL

from nsca.errors import NSCAError
from nsca.ng import CIPHERS, NGDestination
from nsca.relay import Relay
from nsca.result import CheckResult
from nsca.spool import Record, SpoolWriter
from vigil.testing.wait import poll

pytestmark = pytest.mark.integration  # a hostile NSCA-NG server on loopback

_b = Binding()
_ffi, _lib = _b.ffi, _b.lib
PSK = b"ng-fuzz"
KINDS = ["garbage", "endless", "close", "unknown", "fail", "bail", "honest", "drop",
         "binary"]


class HostileNG:
    def __init__(self, seed: int = 9, kinds: list[str] = KINDS) -> None:
        self.kinds = kinds
        self.rng = random.Random(seed)
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.accepted: list[bytes] = []
        self.sessions = 0
        self._stop = threading.Event()
        self.ctx = SSL.Context(SSL.TLS_SERVER_METHOD)
        self.ctx.set_max_proto_version(SSL.TLS1_2_VERSION)
        self.ctx.set_cipher_list(CIPHERS + b":@SECLEVEL=0")

        @_ffi.callback("unsigned int(SSL *, const char *, unsigned char *, unsigned int)")
        def cb(_ssl: Any, _identity: Any, psk: Any, max_len: int) -> int:
            _ffi.memmove(psk, PSK, len(PSK))
            return len(PSK)

        self._cb = cb
        _lib.SSL_CTX_set_psk_server_callback(self.ctx._context, cb)  # noqa: SLF001
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                raw, _ = self.sock.accept()
            except TimeoutError:
                continue
            # OpenSSL wants a blocking socket; a kernel timeout bounds each read
            raw.settimeout(None)
            raw.setsockopt(socket.SOL_SOCKET, socket.SO_RCVTIMEO, struct.pack("ll", 5, 0))
            kind = self.kinds[self.sessions % len(self.kinds)]
            self.sessions += 1
            conn = SSL.Connection(self.ctx, raw)
            conn.set_accept_state()
            with contextlib.suppress(SSL.Error, OSError):
                conn.do_handshake()
                self._session(conn, kind)
                conn.shutdown()
            raw.close()

    def _line(self, conn: SSL.Connection, buf: bytearray) -> bytes:
        while b"\n" not in buf:
            chunk = conn.recv(4096)
            if not chunk:
                raise OSError("closed")
            buf += chunk
        line, _, rest = bytes(buf).partition(b"\n")
        buf[:] = rest
        return line.rstrip(b"\r")

    def _session(self, conn: SSL.Connection, kind: str) -> None:
        buf = bytearray()
        self._line(conn, buf)  # MOIN
        if kind == "garbage":
            conn.sendall(self.rng.randbytes(self.rng.randrange(1, 3000)))
            return
        if kind == "drop":
            return
        if kind == "bail":
            conn.sendall(b"BAIL go away\x1b[31m\r\n")
            return
        conn.sendall(b"MOIN 1\r\n")
        while True:
            req = self._line(conn, buf)
            if req == b"QUIT":
                conn.sendall(b"OKAY\r\n")
                return
            n = int(req.split()[1])
            if kind == "endless":
                conn.sendall(b"OKAY" + b"x" * 5000)
                return
            if kind == "unknown":
                conn.sendall(b"WHAT?\r\n")
                return
            if kind == "binary":
                conn.sendall(b"\xff\x00\xfe\r\n")
                return
            if kind == "fail":
                conn.sendall(b"FAIL not now\r\n")
                continue
            conn.sendall(b"OKAY\r\n")
            while len(buf) < n:
                buf += conn.recv(4096)
            command, buf[:] = bytes(buf[:n]), buf[n:]
            if kind == "close":
                return  # took it, never answered: must be sent again
            self.accepted.append(command)
            conn.sendall(b"OKAY\r\n")

    def stop(self) -> None:
        self._stop.set()
        self.thread.join(5)
        self.sock.close()


def test_ng_destination_raises_only_nsca_errors() -> None:
    srv = HostileNG()
    try:
        dest = NGDestination("127.0.0.1", srv.port, identity="vigil", psk=PSK.decode(),
                             timeout=3)
        recs = [Record(os.urandom(16), CheckResult("h", f"s{i}", 0, "x", 1.0)) for i in range(3)]
        outcomes = []
        for _ in range(len(KINDS) * 3):
            try:
                dest.send(recs)
                outcomes.append("ok")
            except NSCAError as exc:  # anything else fails the test
                outcomes.append(type(exc).__name__)
        assert "ok" in outcomes and len(set(outcomes)) > 1, outcomes
    finally:
        srv.stop()


def test_relay_against_a_hostile_ng_server_loses_nothing(tmp_path: Path, caplog) -> None:
    # FAIL is the server refusing a command for good (not authorised): the relay
    # logs and skips it by design, so that kind is left out here.
    srv = HostileNG(kinds=[k for k in KINDS if k != "fail"])
    spool = tmp_path / "spool"
    w = SpoolWriter(spool, seal_interval=0.01)
    w.append([Record(os.urandom(16), CheckResult("h", f"s{i}", 0, f"r{i}", 1700000000.0 + i))
              for i in range(60)])
    w.close()
    relay = Relay(spool, [NGDestination("127.0.0.1", srv.port, identity="vigil",
                                        psk=PSK.decode(), timeout=3, batch_size=7)],
                  retry_min=0.01, retry_max=0.02, rescan_interval=0.1)
    t = threading.Thread(target=relay.run)
    try:
        with caplog.at_level(logging.DEBUG):
            t.start()
            want = {f"s{i}" for i in range(60)}
            assert poll(lambda: want <= {c.split(b";")[2].decode() for c in srv.accepted},
                        timeout=60), srv.sessions
    finally:
        relay.stop()
        t.join(10)
        srv.stop()
    assert relay.workers[0].is_alive() is False and relay.workers[0].sent >= 60
    assert not [r for r in caplog.records if r.exc_info], "a traceback was logged"
    assert all("\x1b" not in r.getMessage() for r in caplog.records)
