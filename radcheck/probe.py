"""One RADIUS self-test: an Access-Request that must come back as an Access-Accept.

Everything that is not an Access-Accept, verified with our shared secret,
within the timeout is a failure, and the failure says which kind it was:

- ``timeout``: no answer in time (engine hung, stopped, overloaded; or a
  server that drops requests whose Message-Authenticator fails, i.e. a
  secret mismatch on a server that checks it);
- ``refused``: nothing listens on the port (ICMP port unreachable);
- ``reject``: Access-Reject (self-test account unknown or wrong password);
- ``garbage``: an answer that does not decode, does not belong to our
  request, or fails the Response Authenticator / Message-Authenticator
  check (the engine answers with a different shared secret);
- ``error``: a local socket error.

The requests carry a Message-Authenticator (BlastRADIUS, CVE-2024-3596),
and replies that have one are verified.
"""

from __future__ import annotations

import io
import logging
import secrets
import socket
import time
from dataclasses import dataclass, field

from pyrad import packet as radpacket
from pyrad.dictionary import Dictionary

log = logging.getLogger(__name__)

# The few attributes the self-test uses; RFC 2865 numbers. Kept here so that
# radcheck works whatever dictionary the engine is configured with.
_DICTIONARY = """\
ATTRIBUTE User-Name 1 string
ATTRIBUTE User-Password 2 string encrypt=1
ATTRIBUTE NAS-IP-Address 4 ipaddr
ATTRIBUTE Reply-Message 18 string
ATTRIBUTE Proxy-State 33 octets
ATTRIBUTE Message-Authenticator 80 octets
"""

_dictionary: Dictionary | None = None


def dictionary() -> Dictionary:
    global _dictionary
    if _dictionary is None:
        _dictionary = Dictionary(io.StringIO(_DICTIONARY))
    return _dictionary


@dataclass(frozen=True)
class ProbeResult:
    ok: bool
    kind: str  # accept, timeout, refused, reject, garbage, error
    error: str | None
    rtt_ms: float | None


@dataclass(frozen=True)
class SelfTest:
    """What to ask and whom: the ``[Self Test]`` and ``[Radius]`` values."""

    host: str
    port: int
    secret: bytes = field(repr=False)  # never in a log line or a traceback
    nas_ip: str = "127.0.0.1"
    user: str = ""
    password: str = field(default="", repr=False)
    timeout: float = 5.0

    @property
    def target(self) -> str:
        return f"{self.host}:{self.port}"


def build_request(test: SelfTest, ident: int) -> radpacket.AuthPacket:
    req = radpacket.AuthPacket(code=radpacket.AccessRequest, id=ident, secret=test.secret,
                               dict=dictionary())
    req["User-Name"] = test.user
    req["User-Password"] = req.PwCrypt(test.password)
    req["NAS-IP-Address"] = test.nas_ip
    req.add_message_authenticator()
    return req


def judge(request: radpacket.AuthPacket, data: bytes, test: SelfTest,
          rtt_ms: float) -> ProbeResult | None:
    """What a datagram says about the test; None if it is not an answer to our request."""
    if len(data) < 20:
        return ProbeResult(False, "garbage", f"garbage reply from {test.target}: "
                           f"{len(data)} bytes, shorter than a RADIUS header", rtt_ms)
    if data[1] != request.id:
        return None  # a late answer to an earlier request: keep waiting
    try:
        reply = radpacket.Packet(packet=data, secret=test.secret, dict=dictionary())
    except radpacket.PacketError as exc:
        return ProbeResult(False, "garbage",
                           f"garbage reply from {test.target}: {exc}", rtt_ms)
    if not request.VerifyReply(reply, data):
        return ProbeResult(False, "garbage",
                           f"reply from {test.target} fails the authenticator check "
                           "(wrong shared secret?)", rtt_ms)
    if reply.code == radpacket.AccessAccept:
        return ProbeResult(True, "accept", None, rtt_ms)
    if reply.code == radpacket.AccessReject:
        why = ""
        try:
            msgs = reply.get("Reply-Message") or []
            if msgs:
                why = ": " + "; ".join(str(m) for m in msgs)
        except (KeyError, UnicodeDecodeError):
            pass
        return ProbeResult(False, "reject",
                           f"Access-Reject for {test.user} from {test.target}{why}", rtt_ms)
    return ProbeResult(False, "garbage",
                       f"unexpected reply code {reply.code} from {test.target}", rtt_ms)


def probe(test: SelfTest, ident: int | None = None) -> ProbeResult:
    """Send one Access-Request and wait up to ``test.timeout`` for its answer."""
    ident = secrets.randbelow(256) if ident is None else ident
    request = build_request(test, ident)
    raw = request.RequestPacket()
    try:
        infos = socket.getaddrinfo(test.host, test.port, type=socket.SOCK_DGRAM)
    except OSError as exc:
        return ProbeResult(False, "error", f"cannot resolve {test.host}: {exc}", None)
    family, _, _, _, addr = infos[0]
    with socket.socket(family, socket.SOCK_DGRAM) as sock:
        start = time.monotonic()
        deadline = start + test.timeout
        try:
            # connect(): the kernel then reports ICMP port-unreachable as ECONNREFUSED.
            sock.connect(addr)
            sock.send(raw)
            while True:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError
                sock.settimeout(left)
                data = sock.recv(4096)
                rtt_ms = (time.monotonic() - start) * 1000.0
                result = judge(request, data, test, round(rtt_ms, 3))
                if result is not None:
                    return result
        except TimeoutError:
            return ProbeResult(False, "timeout", f"no answer from {test.target} within "
                               f"{test.timeout:g} s", None)
        except ConnectionRefusedError:
            return ProbeResult(False, "refused", f"nothing listens on {test.target} "
                               "(port unreachable)", None)
        except OSError as exc:
            return ProbeResult(False, "error", f"socket error towards {test.target}: {exc}",
                               None)
