"""The one RADIUS client: a request out, its verified answer in, within explicit timeouts.

Used by radcheck's probe, the RADIUS check plugins, ``vigil call`` and the
test sandboxes; it knows no room (the caller brings the dictionary and the
attributes). A connected UDP socket per exchange, so an ICMP port unreachable
comes back as ``ECONNREFUSED``; a retransmission resends the same bytes
(RFC 5080: same Identifier and authenticator, so the server's duplicate cache
answers it instead of counting the request twice).

Every failure is one :class:`RadiusError` whose ``kind`` says which it was::

    RadiusError                 kind
    ├── RadiusTimeout           "timeout"   no answer to this request in time
    ├── RadiusRefused           "refused"   nothing listens (port unreachable)
    ├── RadiusGarbage           "garbage"   short, undecodable, or failing the
    │                                       Response Authenticator or
    │                                       Message-Authenticator check
    └── RadiusSocketError       "error"     a local socket error
        └── RadiusUnresolved    "error"     the host name does not resolve

Answers to other Identifiers (a late reply to an earlier request) are
skipped, not errors.
"""

from __future__ import annotations

import functools
import io
import secrets
import socket
import time
from dataclasses import dataclass, field

from pyrad import packet as radpacket
from pyrad.dictionary import Dictionary

HEADER_LEN = 20
MAX_DATAGRAM = 4096

# The RFC 2865/2866 attributes a self-test or a probe sends and reads, by
# number: radcheck and the plugins work whatever dictionary the engine uses.
_RFC_DICTIONARY = """\
ATTRIBUTE User-Name 1 string
ATTRIBUTE User-Password 2 string encrypt=1
ATTRIBUTE NAS-IP-Address 4 ipaddr
ATTRIBUTE Reply-Message 18 string
ATTRIBUTE Proxy-State 33 octets
ATTRIBUTE Acct-Status-Type 40 integer
ATTRIBUTE Acct-Delay-Time 41 integer
ATTRIBUTE Acct-Session-Id 44 string
ATTRIBUTE Acct-Session-Time 46 integer
ATTRIBUTE Message-Authenticator 80 octets
VALUE Acct-Status-Type Start 1
VALUE Acct-Status-Type Stop 2
VALUE Acct-Status-Type Interim-Update 3
VALUE Acct-Status-Type Alive 3
"""


@functools.cache
def rfc_dictionary() -> Dictionary:
    """The few standard attributes above, parsed once."""
    return Dictionary(io.StringIO(_RFC_DICTIONARY))


class RadiusError(Exception):
    kind = "error"

    def __init__(self, target: str, detail: str) -> None:
        self.target = target
        self.detail = detail
        super().__init__(f"RADIUS {target}: {detail}")


class RadiusTimeout(RadiusError):
    kind = "timeout"


class RadiusRefused(RadiusError):
    kind = "refused"


class RadiusGarbage(RadiusError):
    kind = "garbage"


class RadiusSocketError(RadiusError):
    kind = "error"


class RadiusUnresolved(RadiusSocketError):
    """A local misconfiguration rather than a target that is down."""


@dataclass(frozen=True)
class Timeouts:
    """``per_try`` seconds for each of ``tries`` sends of the same datagram."""

    per_try: float = 3.0
    tries: int = 1

    def __post_init__(self) -> None:
        if self.per_try <= 0 or self.tries < 1:
            raise ValueError("per_try must be positive and tries at least 1")

    @classmethod
    def within(cls, total: float, tries: int = 1) -> Timeouts:
        """``tries`` sends sharing ``total`` seconds (a plugin's time budget)."""
        return cls(per_try=max(total, 0.001) / tries, tries=tries)

    @property
    def total(self) -> float:
        return self.per_try * self.tries


@dataclass(frozen=True)
class Answer:
    packet: radpacket.Packet
    raw: bytes
    rtt: float  # seconds from the (last) send to this answer

    @property
    def code(self) -> int:
        return int(self.packet.code)


@dataclass
class RadiusClient:
    """Whom to ask (``host``, ports) with which ``secret`` and ``dictionary``."""

    host: str
    auth_port: int
    acct_port: int
    secret: bytes = field(repr=False)  # never in a log line or a traceback
    dictionary: Dictionary = field(repr=False)
    timeouts: Timeouts = field(default_factory=Timeouts)

    def target(self, port: int) -> str:
        return f"{self.host}:{port}"

    # ------------------------------------------------------------ packets

    def auth_packet(self, ident: int | None = None, *,
                    message_authenticator: bool = True) -> radpacket.AuthPacket:
        """An empty Access-Request; with a Message-Authenticator (BlastRADIUS, CVE-2024-3596)."""
        req = radpacket.AuthPacket(code=radpacket.AccessRequest, id=_ident(ident),
                                   secret=self.secret, dict=self.dictionary)
        if message_authenticator:
            req.add_message_authenticator()
        return req

    def acct_packet(self, ident: int | None = None) -> radpacket.AcctPacket:
        return radpacket.AcctPacket(code=radpacket.AccountingRequest, id=_ident(ident),
                                    secret=self.secret, dict=self.dictionary)

    # ---------------------------------------------------------- exchange

    def send(self, request: radpacket.Packet, timeouts: Timeouts | None = None) -> Answer:
        """Send ``request`` to the auth or acct port (by its code); its verified answer."""
        port = self.acct_port if request.code == radpacket.AccountingRequest else self.auth_port
        return exchange(self.host, port, request, timeouts or self.timeouts)


def _ident(ident: int | None) -> int:
    return secrets.randbelow(256) if ident is None else ident


def exchange(host: str, port: int, request: radpacket.Packet, timeouts: Timeouts) -> Answer:
    """One request, up to ``timeouts.tries`` sends; the verified answer or RadiusError."""
    target = f"{host}:{port}"
    raw = request.RequestPacket()
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_DGRAM)
    except OSError as exc:
        raise RadiusUnresolved(target, f"cannot resolve {host}: {exc}") from None
    family, _, _, _, addr = infos[0]
    with socket.socket(family, socket.SOCK_DGRAM) as sock:
        try:
            sock.connect(addr)
            for _ in range(timeouts.tries):
                answer = _one_try(sock, raw, request, target, timeouts.per_try)
                if answer is not None:
                    return answer
        except ConnectionRefusedError:
            raise RadiusRefused(target, "nothing listens on the port (port unreachable)") \
                from None
        except OSError as exc:
            raise RadiusSocketError(target, f"socket error: {exc}") from None
    tries = f" ({timeouts.tries} tries)" if timeouts.tries > 1 else ""
    raise RadiusTimeout(target, f"no answer within {timeouts.total:g} s{tries}")


def _one_try(sock: socket.socket, raw: bytes, request: radpacket.Packet, target: str,
             per_try: float) -> Answer | None:
    start = time.monotonic()
    deadline = start + per_try
    sock.send(raw)
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            return None
        sock.settimeout(left)
        try:
            data = sock.recv(MAX_DATAGRAM)
        except TimeoutError:
            return None
        rtt = time.monotonic() - start
        if len(data) < HEADER_LEN:
            raise RadiusGarbage(target, f"garbage reply: {len(data)} bytes, shorter than a "
                                        "RADIUS header")
        if data[1] != request.id:
            continue  # a late answer to an earlier request: keep waiting
        return Answer(verify(request, data, target), data, rtt)


def verify(request: radpacket.Packet, data: bytes, target: str) -> radpacket.Packet:
    """The decoded reply to ``request``, or RadiusGarbage (pure: no socket)."""
    try:
        reply = radpacket.Packet(packet=data, secret=request.secret, dict=request.dict)
    except radpacket.PacketError as exc:
        raise RadiusGarbage(target, f"garbage reply: {exc}") from None
    if not request.VerifyReply(reply, data):
        raise RadiusGarbage(target, "reply fails the authenticator check "
                                    "(wrong shared secret?)")
    return reply


def reply_messages(reply: radpacket.Packet) -> str:
    """The Reply-Message attributes joined, or "" (undecodable ones are skipped)."""
    try:
        msgs = reply.get("Reply-Message") or []
    except (KeyError, UnicodeDecodeError):
        return ""
    return "; ".join(str(m) for m in msgs)
