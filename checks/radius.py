"""One RADIUS round trip (Access-Request or Accounting-Request) for the RADIUS plugins.

Whatever is not a verified answer within the time allowed raises
:class:`~checks.plugin.TargetDown` (CRITICAL) saying which kind of failure it
was; only a local misconfiguration raises :class:`~checks.plugin.PluginError`.
The shared secret comes from the config file, never from the command line.
"""

from __future__ import annotations

import io
import secrets
import socket
import time
from dataclasses import dataclass

from pyrad import packet as radpacket
from pyrad.dictionary import Dictionary

from checks.plugin import Context, PluginError, TargetDown

# RFC 2865/2866 numbers of the attributes the plugins send; kept here so the
# plugins work whatever dictionary the engine is configured with.
_DICTIONARY = """\
ATTRIBUTE User-Name 1 string
ATTRIBUTE User-Password 2 string encrypt=1
ATTRIBUTE NAS-IP-Address 4 ipaddr
ATTRIBUTE Reply-Message 18 string
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
_dictionary: Dictionary | None = None


def dictionary() -> Dictionary:
    global _dictionary
    if _dictionary is None:
        _dictionary = Dictionary(io.StringIO(_DICTIONARY))
    return _dictionary


@dataclass(frozen=True)
class SelfTest:
    """Whom to ask and as whom: ``[Radius]`` and ``[Self Test]`` plus ``-H``/``-p``."""

    host: str
    port: int
    secret: bytes
    nas_ip: str
    user: str
    password: str

    @property
    def target(self) -> str:
        return f"{self.host}:{self.port}"


def self_test(ctx: Context, port_option: str) -> SelfTest:
    a = ctx.args
    secret = ctx.option("Self Test", "Shared_Secret")
    password = ctx.option("Self Test", "Password")
    return SelfTest(
        host=a.host or ctx.option("Radius", "Host"),
        port=a.port or ctx.option("Radius", port_option),
        secret=secret.reveal().encode(),
        nas_ip=ctx.option("Self Test", "NAS-IP-Address"),
        user=a.user or ctx.option("Self Test", "User-Name"),
        password=password.reveal(),
    )


def access_request(test: SelfTest) -> radpacket.AuthPacket:
    req = radpacket.AuthPacket(code=radpacket.AccessRequest, id=secrets.randbelow(256),
                               secret=test.secret, dict=dictionary())
    req["User-Name"] = test.user
    req["User-Password"] = req.PwCrypt(test.password)
    req["NAS-IP-Address"] = test.nas_ip
    # BlastRADIUS (CVE-2024-3596): servers may insist on it
    req.add_message_authenticator()
    return req


def accounting_request(test: SelfTest, session_id: str) -> radpacket.AcctPacket:
    req = radpacket.AcctPacket(code=radpacket.AccountingRequest, id=secrets.randbelow(256),
                               secret=test.secret, dict=dictionary())
    req["User-Name"] = test.user
    req["NAS-IP-Address"] = test.nas_ip
    req["Acct-Status-Type"] = "Interim-Update"
    req["Acct-Session-Id"] = session_id
    req["Acct-Session-Time"] = 0
    return req


def round_trip(request: radpacket.Packet, raw: bytes, test: SelfTest, timeout: float,
               retries: int = 1) -> tuple[radpacket.Packet, float]:
    """Send, wait for the answer to this request, verify it; (reply, seconds)."""
    try:
        addr = socket.getaddrinfo(test.host, test.port, type=socket.SOCK_DGRAM)[0]
    except socket.gaierror as exc:
        raise PluginError(f"cannot resolve {test.host}: {exc.strerror}") from None
    sock = socket.socket(addr[0], socket.SOCK_DGRAM)
    try:
        sock.connect(addr[4])  # connected UDP: ICMP port unreachable becomes an error
        per_try = timeout / (retries + 1)
        for _ in range(retries + 1):
            start = time.monotonic()
            sock.send(raw)
            deadline = start + per_try
            while True:
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                sock.settimeout(left)
                try:
                    data = sock.recv(4096)
                except TimeoutError:
                    break
                except ConnectionRefusedError:
                    raise TargetDown(f"RADIUS {test.target}: connection refused "
                                     "(nothing listens on the port)") from None
                except OSError as exc:
                    raise TargetDown(f"RADIUS {test.target}: {exc.strerror}") from None
                rtt = time.monotonic() - start
                if len(data) < 20 or data[1] != request.id:
                    continue  # not an answer to this request
                return _verify(request, data, test), rtt
        raise TargetDown(f"RADIUS {test.target}: no answer within {timeout:g}s "
                         f"({retries + 1} tries)")
    finally:
        sock.close()


def _verify(request: radpacket.Packet, data: bytes, test: SelfTest) -> radpacket.Packet:
    try:
        reply = radpacket.Packet(packet=data, secret=test.secret, dict=dictionary())
    except radpacket.PacketError as exc:
        raise TargetDown(f"RADIUS {test.target}: undecodable reply: {exc}") from None
    if not request.VerifyReply(reply, data):
        raise TargetDown(f"RADIUS {test.target}: reply fails the authenticator check "
                         "(shared secret differs?)")
    return reply


def reply_message(reply: radpacket.Packet) -> str:
    try:
        msgs = reply.get("Reply-Message") or []
    except (KeyError, UnicodeDecodeError):
        return ""
    return "; ".join(str(m) for m in msgs)
