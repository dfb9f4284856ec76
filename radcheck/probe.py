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
and replies that have one are verified. The exchange itself is the project's
one RADIUS client (:mod:`vigil.radius_client`); this module turns its answer
or error into a verdict.
"""

from __future__ import annotations

import logging
import secrets
from dataclasses import dataclass, field

from pyrad import packet as radpacket

from vigil.radius_client import (
    HEADER_LEN,
    RadiusClient,
    RadiusError,
    RadiusGarbage,
    RadiusRefused,
    RadiusTimeout,
    Timeouts,
    reply_messages,
    rfc_dictionary,
    verify,
)

log = logging.getLogger(__name__)

# radcheck works whatever dictionary the engine is configured with
dictionary = rfc_dictionary


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

    def client(self) -> RadiusClient:
        # one send, no retransmission: a lost answer is a failed test, as in the source
        return RadiusClient(self.host, self.port, self.port, self.secret, dictionary(),
                            Timeouts(per_try=self.timeout, tries=1))


def build_request(test: SelfTest, ident: int) -> radpacket.AuthPacket:
    req = test.client().auth_packet(ident)
    req["User-Name"] = test.user
    req["User-Password"] = req.PwCrypt(test.password)
    req["NAS-IP-Address"] = test.nas_ip
    return req


def verdict(reply: radpacket.Packet, test: SelfTest, rtt_ms: float) -> ProbeResult:
    """What a verified answer says about the test."""
    if reply.code == radpacket.AccessAccept:
        return ProbeResult(True, "accept", None, rtt_ms)
    if reply.code == radpacket.AccessReject:
        why = reply_messages(reply)
        return ProbeResult(False, "reject", f"Access-Reject for {test.user} from "
                           f"{test.target}" + (f": {why}" if why else ""), rtt_ms)
    return ProbeResult(False, "garbage",
                       f"unexpected reply code {reply.code} from {test.target}", rtt_ms)


def judge(request: radpacket.AuthPacket, data: bytes, test: SelfTest,
          rtt_ms: float) -> ProbeResult | None:
    """What a datagram says about the test; None if it is not an answer to our request."""
    if len(data) < HEADER_LEN:
        return ProbeResult(False, "garbage", f"garbage reply from {test.target}: "
                           f"{len(data)} bytes, shorter than a RADIUS header", rtt_ms)
    if data[1] != request.id:
        return None
    try:
        reply = verify(request, data, test.target)
    except RadiusGarbage as exc:
        return ProbeResult(False, "garbage", str(exc), rtt_ms)
    return verdict(reply, test, rtt_ms)


def probe(test: SelfTest, ident: int | None = None) -> ProbeResult:
    """Send one Access-Request and wait up to ``test.timeout`` for its answer."""
    client = test.client()
    request = build_request(test, secrets.randbelow(256) if ident is None else ident)
    try:
        answer = client.send(request)
    except RadiusTimeout:
        return ProbeResult(False, "timeout", f"no answer from {test.target} within "
                           f"{test.timeout:g} s", None)
    except RadiusRefused:
        return ProbeResult(False, "refused", f"nothing listens on {test.target} "
                           "(port unreachable)", None)
    except RadiusError as exc:
        return ProbeResult(False, exc.kind, str(exc), None)
    return verdict(answer.packet, test, round(answer.rtt * 1000.0, 3))
