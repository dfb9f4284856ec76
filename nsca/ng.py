"""NSCA-NG client and relay destination: TLS-PSK, ``MOIN``/``PUSH``/``OKAY``/``QUIT``.

Python 3.11's ``ssl`` has no PSK, and pyOpenSSL's ``Context`` has no PSK
method either; the OpenSSL bindings shipped with ``cryptography`` do
(``SSL_CTX_set_psk_client_callback``), so the callback is installed on
pyOpenSSL's context through them. TLS 1.2 with the PSK cipher suites
(``TLS_PSK_WITH_AES_256_CBC_SHA`` is the one the protocol requires).

Every ``PUSH`` is answered ``OKAY`` once the server has taken the command,
so unlike NSCA each result is acknowledged: the relay moves its cursor past
exactly the acknowledged ones, even when a session breaks half-way.
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import struct
import time
from collections.abc import Sequence
from typing import Any

from cryptography.hazmat.bindings.openssl.binding import Binding
from OpenSSL import SSL

from nsca.commandfile import format_command
from nsca.errors import ConnectionFailed, FieldError, NSCAError, NSCANGError
from nsca.result import to_bytes
from nsca.spool import Record
from vigil.config import Secret
from vigil.drop_log import printable

log = logging.getLogger(__name__)

_binding = Binding()
_ffi, _lib = _binding.ffi, _binding.lib
CIPHERS = b"PSK-AES256-CBC-SHA:PSK-AES256-GCM-SHA384:PSK-AES128-GCM-SHA256:PSK"
MAX_LINE = 1024


REPLIES = ("MOIN", "OKAY", "FAIL", "BAIL")


def split_line(buf: bytes) -> tuple[str | None, bytes]:
    """The first whole server line of ``buf`` (None if not yet there) and the rest.

    Pure, for the property tests: any bytes give a line, None or
    :class:`NSCANGError` (a line longer than ``MAX_LINE``), nothing else.
    """
    line, nl, rest = buf.partition(b"\n")
    if not nl:
        if len(buf) > MAX_LINE:
            raise NSCANGError(f"response line longer than {MAX_LINE} bytes")
        return None, buf
    if len(line) > MAX_LINE:
        raise NSCANGError(f"response line longer than {MAX_LINE} bytes")
    return line.rstrip(b"\r").decode("ascii", "replace"), rest


def parse_reply(line: str) -> tuple[str, str]:
    """``"FAIL not allowed"`` -> ``("FAIL", "not allowed")``; NSCANGError for anything else."""
    word, _, text = line.partition(" ")
    if word not in REPLIES:
        raise NSCANGError(f"unexpected reply {printable(line, 60)}")
    return word, text


class CommandRefused(NSCANGError):
    """The server answered FAIL to one command (not authorised, malformed)."""


class PartialDelivery(ConnectionFailed):
    """The session broke after ``delivered`` results were acknowledged."""

    def __init__(self, message: str, delivered: int) -> None:
        super().__init__(message)
        self.delivered = delivered


def _psk_context(identity: bytes, psk: bytes) -> tuple[SSL.Context, Any]:
    if not _lib.Cryptography_HAS_PSK:
        raise NSCANGError("this OpenSSL build has no PSK support")
    ctx = SSL.Context(SSL.TLS_CLIENT_METHOD)
    ctx.set_min_proto_version(SSL.TLS1_VERSION)
    ctx.set_max_proto_version(SSL.TLS1_2_VERSION)
    ctx.set_cipher_list(CIPHERS)

    @_ffi.callback("unsigned int(SSL *, char *, char *, unsigned int, unsigned char *,"
                   " unsigned int)")
    def callback(_ssl: Any, _hint: Any, id_buf: Any, max_id: int, psk_buf: Any,
                 max_psk: int) -> int:
        if len(identity) + 1 > max_id or len(psk) > max_psk:
            return 0
        _ffi.memmove(id_buf, identity + b"\0", len(identity) + 1)
        _ffi.memmove(psk_buf, psk, len(psk))
        return len(psk)

    _lib.SSL_CTX_set_psk_client_callback(ctx._context, callback)  # noqa: SLF001
    return ctx, callback  # the callback must outlive the context


class NGSession:
    """One NSCA-NG session: ``MOIN``, any number of ``PUSH``, ``QUIT``."""

    def __init__(self, host: str, port: int = 5668, *, identity: str,
                 psk: str | Secret, timeout: float = 10.0) -> None:
        self.host, self.port = host, port
        self.identity = identity.encode()
        self._psk = (psk.reveal() if isinstance(psk, Secret) else psk).encode()
        self.timeout = timeout
        self._conn: SSL.Connection | None = None
        self._buf = b""

    def open(self) -> NGSession:
        ctx, self._keep = _psk_context(self.identity, self._psk)
        try:
            sock = socket.create_connection((self.host, self.port), timeout=self.timeout)
        except OSError as exc:
            raise ConnectionFailed(f"{self}: {exc}") from exc
        # OpenSSL wants a blocking socket; kernel timeouts bound every read/write.
        sock.settimeout(None)
        tv = struct.pack("ll", int(self.timeout), int((self.timeout % 1) * 1e6))
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVTIMEO, tv)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDTIMEO, tv)
        self._sock = sock
        conn = SSL.Connection(ctx, sock)
        conn.set_connect_state()
        try:
            conn.do_handshake()
        except (SSL.Error, OSError) as exc:
            sock.close()
            raise ConnectionFailed(f"{self}: TLS-PSK handshake failed (wrong identity or "
                                   f"password?): {exc}") from exc
        self._conn = conn
        session = os.urandom(9).hex()
        try:
            reply = self._request(f"MOIN 1 {session}")
        except NSCAError:
            self.close()  # a server that hangs up or babbles must not leak the socket
            raise
        if not reply.startswith("MOIN"):
            self.close()
            raise NSCANGError(f"{self}: MOIN refused: {reply}")
        return self

    def __str__(self) -> str:
        return f"nsca-ng {self.host}:{self.port}"

    def _send(self, data: bytes) -> None:
        assert self._conn is not None
        try:
            self._conn.sendall(data)
        except (SSL.Error, OSError) as exc:
            raise ConnectionFailed(f"{self}: send: {exc}") from exc

    def _line(self) -> str:
        assert self._conn is not None
        while True:
            try:
                line, self._buf = split_line(self._buf)
            except NSCANGError as exc:
                raise NSCANGError(f"{self}: {exc}") from None
            if line is not None:
                return line
            try:
                chunk = self._conn.recv(4096)
            except SSL.ZeroReturnError:
                chunk = b""
            except (SSL.Error, OSError) as exc:
                raise ConnectionFailed(f"{self}: receive: {exc}") from exc
            if not chunk:
                raise ConnectionFailed(f"{self}: the server closed the session")
            self._buf += chunk

    def _request(self, line: str) -> str:
        self._send(line.encode("ascii") + b"\r\n")
        reply = self._line()
        try:
            word, text = parse_reply(reply)
        except NSCANGError as exc:
            self.close()
            raise NSCANGError(f"{self}: {exc}") from None
        if word == "BAIL":
            self.close()
            raise NSCANGError(f"{self}: server bailed out: {printable(text)}")
        return reply

    def push(self, command: str) -> None:
        """Submit one command line (ending in a newline); returns once it is ``OKAY``."""
        data = to_bytes(command)
        reply = self._request(f"PUSH {len(data)}")
        if reply.startswith("FAIL"):
            raise CommandRefused(f"{self}: PUSH refused: {printable(reply[5:])}")
        if reply != "OKAY":
            raise NSCANGError(f"{self}: unexpected answer to PUSH: {printable(reply)}")
        self._send(data)
        reply = self._line()
        if reply.startswith("FAIL"):
            raise CommandRefused(f"{self}: command refused: {printable(reply[5:])}")
        if reply != "OKAY":
            raise NSCANGError(f"{self}: unexpected answer to a command: {printable(reply)}")

    def quit(self) -> None:
        try:
            self._request("QUIT")
        finally:
            self.close()

    def close(self) -> None:
        if self._conn is not None:
            with contextlib.suppress(SSL.Error, OSError):
                self._conn.shutdown()
            self._sock.close()
            self._conn = None


class NGDestination:
    """An NSCA-NG server as a relay destination."""

    def __init__(self, host: str, port: int = 5668, *, identity: str, psk: str | Secret,
                 timeout: float = 10.0, batch_size: int = 20) -> None:
        self.host, self.port = host, port
        self.name = f"nsca-ng-{host}-{port}"
        self.identity = identity
        self._psk = psk
        self.timeout = timeout
        self.batch_size = batch_size

    def __str__(self) -> str:
        return f"nsca-ng {self.host}:{self.port}"

    def send(self, records: Sequence[Record]) -> None:
        session = NGSession(self.host, self.port, identity=self.identity, psk=self._psk,
                            timeout=self.timeout).open()
        done = 0
        try:
            for rec in records:
                r = rec.result
                try:
                    line = format_command(r, int(r.timestamp or 0) or _now())
                except FieldError as exc:
                    log.error("%s: result for %s dropped: %s", self, printable(r.host), exc)
                    done += 1
                    continue
                try:
                    session.push(line)
                except CommandRefused as exc:
                    # Sending it again would be refused again: log it and move on.
                    log.error("%s: result for %s;%s refused: %s", self, printable(r.host),
                              printable(r.service or "-"), exc)
                done += 1
            session.quit()
        except (ConnectionFailed, NSCANGError) as exc:
            session.close()
            raise PartialDelivery(str(exc), done) from exc


def _now() -> int:
    return int(time.time())
