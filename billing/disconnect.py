"""Forced disconnect: an RFC 5176 Disconnect-Request to the node carrying a call.

The request names the session the way the node knows it (Acct-Session-Id,
h323-conf-id also inside Cisco-AVPair, User-Name, NAS-IP-Address, the
calling and called numbers) and carries an Event-Timestamp. It is sent as a
RADIUS client sends: up to ``retries`` times, the same Identifier and
Request Authenticator each time, so the node can tell a retransmission from
a new request. The node's answer is a Disconnect-ACK, or a Disconnect-NAK
with an Error-Cause (decoded here to its RFC 5176 text), or nothing.

The secret comes from the ``nodes`` table, never from a command line or a log.
"""

from __future__ import annotations

import datetime as dt
import enum
import logging
from dataclasses import dataclass

from pyrad import packet as rp
from pyrad.dictionary import Dictionary

from billing.calls import CallInProgress
from vigil.radius_client import RadiusError, RadiusTimeout, Timeouts, exchange

log = logging.getLogger("billing.disconnect")

DEFAULT_PORT = 3799

# RFC 5176 section 3.5 (Error-Cause values), in the RFC's words.
ERROR_CAUSES: dict[int, str] = {
    201: "Residual Session Context Removed",
    202: "Invalid EAP Packet (Ignored)",
    401: "Unsupported Attribute",
    402: "Missing Attribute",
    403: "NAS Identification Mismatch",
    404: "Invalid Request",
    405: "Unsupported Service",
    406: "Unsupported Extension",
    407: "Invalid Attribute Value",
    501: "Administratively Prohibited",
    502: "Request Not Routable (Proxy)",
    503: "Session Context Not Found",
    504: "Session Context Not Removable",
    505: "Other Proxy Processing Error",
    506: "Resources Unavailable",
    507: "Request Initiated",
    508: "Multiple Session Selection Unsupported",
}


def describe_error_cause(code: int | None) -> str:
    if code is None:
        return "no Error-Cause given"
    return f"{code} {ERROR_CAUSES.get(code, 'unknown Error-Cause')}"


class Result(enum.StrEnum):
    ACK = "ack"
    NAK = "nak"
    TIMEOUT = "timeout"
    UNREACHABLE = "unreachable"


# Exit codes of `vigil calls disconnect` (docs/billing.md).
EXIT_CODES = {Result.ACK: 0, Result.NAK: 1, Result.TIMEOUT: 3, Result.UNREACHABLE: 3}


@dataclass(frozen=True)
class Target:
    """Where the node takes Disconnect-Requests. ``secret`` is never printed."""

    node: str
    address: str
    port: int
    secret: str

    def __repr__(self) -> str:
        return f"Target(node={self.node!r}, address={self.address!r}, port={self.port})"


@dataclass(frozen=True)
class Outcome:
    result: Result
    error_cause: int | None = None
    attempts: int = 0  # sends made, when no answer came
    detail: str = ""

    @property
    def exit_code(self) -> int:
        return EXIT_CODES[self.result]

    @property
    def text(self) -> str:
        if self.result == Result.ACK:
            return "Disconnect-ACK: the node ended the session"
        if self.result == Result.NAK:
            return f"Disconnect-NAK: {describe_error_cause(self.error_cause)}"
        if self.result == Result.TIMEOUT:
            return f"no answer after {self.attempts} attempts"
        return f"node unreachable: {self.detail}"

    def as_dict(self) -> dict[str, object]:
        return {"result": self.result.value, "error_cause": self.error_cause,
                "error_cause_text": describe_error_cause(self.error_cause)
                if self.result == Result.NAK else None,
                "attempts": self.attempts, "text": self.text}


def request_attributes(call: CallInProgress, now: dt.datetime) -> list[tuple[str, str | int]]:
    """What the node needs to find the session (pure: the test table's subject)."""
    attrs: list[tuple[str, str | int]] = []
    if call.session_id:
        attrs.append(("Acct-Session-Id", call.session_id))
    conf = call.conf_id or call.incoming_conf_id or call.call_id
    incoming = call.incoming_conf_id or call.call_id
    attrs.append(("h323-conf-id", conf))
    attrs.append(("Cisco-AVPair", f"h323-conf-id={conf}"))
    if incoming != conf:
        attrs.append(("h323-incoming-conf-id", incoming))
        attrs.append(("Cisco-AVPair", f"h323-incoming-conf-id={incoming}"))
    if call.user_name:
        attrs.append(("User-Name", call.user_name))
    if call.node_ip:
        attrs.append(("NAS-IP-Address", call.node_ip))
    if call.cli:
        attrs.append(("Calling-Station-Id", call.cli))
    if call.cld:
        attrs.append(("Called-Station-Id", call.cld))
    epoch = now.replace(tzinfo=dt.UTC) if now.tzinfo is None else now
    attrs.append(("Event-Timestamp", int(epoch.timestamp())))
    return attrs


def send(target: Target, attrs: list[tuple[str, str | int]], dictionary: Dictionary,
         timeout: float = 3.0, retries: int = 3) -> Outcome:
    """Send the Disconnect-Request; ACK, NAK, or why there was no answer."""
    # The shared client (vigil.radius_client): a connected socket, so an ICMP
    # port unreachable is seen; the same datagram on every try (RFC 5080).
    req = rp.CoAPacket(code=rp.DisconnectRequest, id=None, secret=target.secret.encode(),
                       dict=dictionary)
    req.id = req.CreateID()
    for name, value in attrs:
        req.AddAttribute(name, value)
    log.info("call %s: Disconnect-Request id %d to node %s at %s:%d (%d attempts of %.1f s)",
             _call_of(attrs), req.id, target.node, target.address, target.port, retries,
             timeout)
    try:
        answer = exchange(target.address, target.port, req, Timeouts(timeout, retries))
    except RadiusTimeout:
        outcome = Outcome(Result.TIMEOUT, attempts=retries)
    except RadiusError as exc:
        # nothing listens (ICMP), no route, or an answer failing the secret: no word
        # from the node that can be trusted
        outcome = Outcome(Result.UNREACHABLE, attempts=1, detail=exc.detail)
    else:
        reply = answer.packet
        if reply.code == rp.DisconnectACK:
            outcome = Outcome(Result.ACK)
        elif reply.code == rp.DisconnectNAK:
            causes = reply.get("Error-Cause") or [None]
            cause = causes[0]
            outcome = Outcome(Result.NAK, error_cause=int(cause) if cause is not None else None)
        else:
            outcome = Outcome(Result.UNREACHABLE, attempts=1,
                              detail=f"answered with RADIUS code {reply.code}, not an ACK "
                                     "or NAK")
    level = logging.INFO if outcome.result == Result.ACK else logging.WARNING
    log.log(level, "call %s: node %s answered the Disconnect-Request: %s",
            _call_of(attrs), target.node, outcome.text)
    return outcome


def _call_of(attrs: list[tuple[str, str | int]]) -> str:
    for wanted in ("h323-incoming-conf-id", "h323-conf-id"):
        for n, v in attrs:
            if n == wanted:
                return str(v)
    return "-"
