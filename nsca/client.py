"""NSCA client: many results per connection, C ``nsca`` or Vigil server alike.

A connection: read the server's 132-byte init packet, encrypt every packet
with one cipher state (the keystream is set up once per connection), write
them all, half-close, and wait until the server closes its side. The C
``nsca`` handles packets in order and closes only after reading our EOF, so
a clean close means every packet was read: the nearest thing to an
acknowledgement NSCA has. The relay records a batch as sent only then.
"""

from __future__ import annotations

import logging
import socket
import time
from collections.abc import Sequence

from nsca import crypto, packet
from nsca.errors import ConnectionFailed, NSCAError
from nsca.result import CheckResult
from vigil.config import Secret

log = logging.getLogger(__name__)


def _recv_exactly(sock: socket.socket, n: int) -> bytes:
    buf = bytearray()
    while len(buf) < n:
        chunk = sock.recv(n - len(buf))
        if not chunk:
            break
        buf += chunk
    return bytes(buf)


def _reveal(password: str | bytes | Secret) -> str | bytes:
    return password.reveal() if isinstance(password, Secret) else password


class Connection:
    """One NSCA connection; use as a context manager, then :meth:`finish`."""

    def __init__(self, host: str, port: int = 5667, *, password: str | bytes | Secret = "",
                 method: int = 1, timeout: float = 10.0, packet_version: int = 3) -> None:
        crypto.check_method(method)
        packet.output_len(packet_version)
        self.host, self.port = host, port
        self._password = _reveal(password)
        self.method = method
        self.timeout = timeout
        self.packet_version = packet_version
        self.sock: socket.socket | None = None
        self.timestamp = 0
        self.sent = 0

    def open(self) -> Connection:
        try:
            self.sock = socket.create_connection((self.host, self.port), timeout=self.timeout)
            self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            init = _recv_exactly(self.sock, packet.INIT_PACKET_SIZE)
        except OSError as exc:
            self.abort()
            raise ConnectionFailed(f"{self.host}:{self.port}: {exc}") from exc
        if len(init) != packet.INIT_PACKET_SIZE:
            self.abort()
            raise ConnectionFailed(f"{self.host}:{self.port}: init packet was {len(init)} "
                                   f"bytes, expected {packet.INIT_PACKET_SIZE} (not an NSCA "
                                   "server, or it refused us: allowed hosts?)")
        iv, self.timestamp = packet.decode_init(init)
        self._encrypt = crypto.encryptor(self.method, iv, self._password)
        return self

    def encode(self, results: Sequence[CheckResult],
               result_ids: Sequence[bytes | None] | None = None) -> bytes:
        # The packet carries the server's own timestamp back, as send_nsca does:
        # the server measures max_packet_age with it, so a spooled result's
        # age never makes a C nsca drop it. The check time rides in the trailer.
        enc, ts, ver = self._encrypt, self.timestamp, self.packet_version
        ids = result_ids if result_ids is not None else [None] * len(results)
        return b"".join(enc(packet.encode_data(r, ts, version=ver, result_id=i))
                        for r, i in zip(results, ids, strict=True))

    def send(self, results: Sequence[CheckResult],
             result_ids: Sequence[bytes | None] | None = None) -> int:
        if self.sock is None:
            raise NSCAError("connection is not open")
        data = self.encode(results, result_ids)
        try:
            self.sock.sendall(data)
        except OSError as exc:
            self.abort()
            raise ConnectionFailed(f"{self.host}:{self.port}: sending: {exc}") from exc
        self.sent += len(results)
        return len(results)

    def finish(self) -> None:
        """Half-close and wait for the server to close: everything was read."""
        if self.sock is None:
            return
        sock = self.sock
        try:
            sock.shutdown(socket.SHUT_WR)
            deadline = time.monotonic() + self.timeout
            while True:
                sock.settimeout(max(0.01, deadline - time.monotonic()))
                if not sock.recv(4096):
                    break
        except OSError as exc:
            raise ConnectionFailed(f"{self.host}:{self.port}: waiting for the server to "
                                   f"close: {exc}") from exc
        finally:
            self.abort()

    def abort(self) -> None:
        if self.sock is not None:
            self.sock.close()
            self.sock = None

    def __enter__(self) -> Connection:
        return self.open() if self.sock is None else self

    def __exit__(self, *exc: object) -> None:
        self.abort()


def send_results(results: Sequence[CheckResult], *, host: str, port: int = 5667,
                 password: str | bytes | Secret = "", method: int = 1, timeout: float = 10.0,
                 packet_version: int = 3,
                 result_ids: Sequence[bytes | None] | None = None) -> int:
    """Send ``results`` over one connection; the number sent.

    Raises :class:`nsca.errors.ConnectionFailed` when the server cannot be
    reached or closes on us, :class:`nsca.errors.FieldError` for a host or
    service name that does not fit, :class:`nsca.errors.CipherError` for an
    unknown method.
    """
    if not results:
        return 0
    for r in results:
        packet.check_fields(r)
    ids = list(result_ids) if result_ids is not None else [None] * len(results)
    # nsca >= 2.9 recognises a 720-byte (2.7) packet only when it is alone on its
    # connection, so legacy packets travel one per connection: both kinds of
    # daemon take them that way.
    step = 1 if packet_version == 2 else len(results)
    n = 0
    for start in range(0, len(results), step):
        conn = Connection(host, port, password=password, method=method, timeout=timeout,
                          packet_version=packet_version)
        with conn:
            n += conn.send(results[start:start + step], ids[start:start + step])
            conn.finish()
    log.debug("sent %d results to %s:%d", n, host, port)
    return n
