"""One RADIUS round trip (Access-Request or Accounting-Request) for the RADIUS plugins.

Whatever is not a verified answer within the time allowed raises
:class:`~checks.plugin.TargetDown` (CRITICAL) saying which kind of failure it
was; only a local misconfiguration raises :class:`~checks.plugin.PluginError`.
The shared secret comes from the config file, never from the command line.
The exchange is the project's one RADIUS client (:mod:`vigil.radius_client`).
"""

from __future__ import annotations

from dataclasses import dataclass

from pyrad import packet as radpacket

from checks.plugin import Context, PluginError, TargetDown
from vigil.radius_client import (
    RadiusClient,
    RadiusError,
    RadiusRefused,
    RadiusTimeout,
    RadiusUnresolved,
    Timeouts,
    rfc_dictionary,
)

# the plugins work whatever dictionary the engine is configured with
dictionary = rfc_dictionary


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


def client(test: SelfTest) -> RadiusClient:
    return RadiusClient(test.host, test.port, test.port, test.secret, dictionary())


def access_request(test: SelfTest) -> radpacket.AuthPacket:
    # with a Message-Authenticator (BlastRADIUS, CVE-2024-3596): servers may insist on it
    req = client(test).auth_packet()
    req["User-Name"] = test.user
    req["User-Password"] = req.PwCrypt(test.password)
    req["NAS-IP-Address"] = test.nas_ip
    return req


def accounting_request(test: SelfTest, session_id: str) -> radpacket.AcctPacket:
    req = client(test).acct_packet()
    req["User-Name"] = test.user
    req["NAS-IP-Address"] = test.nas_ip
    req["Acct-Status-Type"] = "Interim-Update"
    req["Acct-Session-Id"] = session_id
    req["Acct-Session-Time"] = 0
    return req


def round_trip(request: radpacket.Packet, test: SelfTest, timeout: float,
               retries: int = 1) -> tuple[radpacket.Packet, float]:
    """Send (``retries`` + 1 tries sharing ``timeout``), verify the answer; (reply, seconds)."""
    try:
        answer = client(test).send(request, Timeouts.within(timeout, retries + 1))
    except RadiusUnresolved as exc:
        raise PluginError(exc.detail) from None  # a local misconfiguration: UNKNOWN
    except RadiusRefused:
        raise TargetDown(f"RADIUS {test.target}: connection refused "
                         "(nothing listens on the port)") from None
    except RadiusTimeout:
        raise TargetDown(f"RADIUS {test.target}: no answer within {timeout:g}s "
                         f"({retries + 1} tries)") from None
    except RadiusError as exc:
        raise TargetDown(str(exc)) from None
    return answer.packet, answer.rtt

