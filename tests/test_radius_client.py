"""The one RADIUS client (vigil/radius_client.py) against real UDP peers on loopback."""

from __future__ import annotations

import contextlib
import io
import socket
from collections.abc import Callable, Iterator

import pytest
from pyrad import packet as radpacket
from pyrad.dictionary import Dictionary

from vigil.radius_client import (
    RadiusClient,
    RadiusGarbage,
    RadiusRefused,
    RadiusTimeout,
    RadiusUnresolved,
    Timeouts,
)
from vigil.testing.udp_peer import Answer, UdpPeers

SECRET = b"s3cret"
DICT = Dictionary(io.StringIO("ATTRIBUTE User-Name 1 string\n"
                              "ATTRIBUTE Acct-Status-Type 40 integer\n"
                              "ATTRIBUTE Message-Authenticator 80 octets\n"))

@pytest.fixture
def peer() -> Iterator[Callable[[Answer], tuple[int, list[bytes]]]]:
    """A UDP peer answering the n-th datagram with ``answer(data, n)``; it keeps what it got."""
    with contextlib.closing(UdpPeers()) as peers:
        yield peers.start


def signed(data: bytes, code: int = radpacket.AccessAccept, secret: bytes = SECRET) -> bytes:
    req = radpacket.Packet(packet=data, secret=secret, dict=DICT)
    reply = req.CreateReply()
    reply.code = code
    return reply.ReplyPacket()


def client(port: int, timeouts: Timeouts) -> RadiusClient:
    return RadiusClient("127.0.0.1", port, port, SECRET, DICT, timeouts)


@pytest.mark.integration
def test_a_lost_answer_is_retried_with_the_same_bytes(peer) -> None:
    # the peer ignores the first datagram: the second try must be the same request
    port, got = peer(lambda data, n: signed(data) if n == 2 else None)
    c = client(port, Timeouts(per_try=0.3, tries=2))
    req = c.auth_packet()
    req["User-Name"] = "u"
    answer = c.send(req)
    assert answer.code == radpacket.AccessAccept and answer.rtt < 0.3
    assert len(got) == 2 and got[0] == got[1]
    assert 80 in radpacket.Packet(packet=got[0], secret=SECRET, dict=DICT)  # BlastRADIUS


@pytest.mark.integration
def test_a_slow_peer_is_a_timeout_after_every_try(peer) -> None:
    port, got = peer(lambda data, n: None)
    with pytest.raises(RadiusTimeout, match=r"no answer within 0.4 s \(2 tries\)"):
        client(port, Timeouts(per_try=0.2, tries=2)).send(client(port, Timeouts()).auth_packet())
    assert len(got) == 2


@pytest.mark.integration
def test_accounting_goes_to_the_acct_port(peer) -> None:
    auth_port, auth_got = peer(lambda data, n: None)
    acct_port, _ = peer(lambda data, n: signed(data, radpacket.AccountingResponse))
    c = RadiusClient("127.0.0.1", auth_port, acct_port, SECRET, DICT, Timeouts(1.0))
    req = c.acct_packet()
    req["Acct-Status-Type"] = 1
    assert c.send(req).code == radpacket.AccountingResponse and auth_got == []


@pytest.mark.integration
def test_other_identifiers_are_skipped_and_bad_signatures_are_garbage(peer) -> None:
    def other_id(data: bytes, n: int) -> bytes:
        raw = bytearray(signed(data))
        raw[1] = (raw[1] + 1) % 256
        return bytes(raw)

    port, _ = peer(other_id)
    with pytest.raises(RadiusTimeout):
        client(port, Timeouts(0.3)).send(client(port, Timeouts()).auth_packet())
    port, _ = peer(lambda data, n: signed(data, secret=b"other"))
    with pytest.raises(RadiusGarbage, match="wrong shared secret"):
        client(port, Timeouts(1.0)).send(client(port, Timeouts()).auth_packet())
    port, _ = peer(lambda data, n: b"\x02\x00")
    with pytest.raises(RadiusGarbage, match="shorter than a RADIUS header") as err:
        client(port, Timeouts(1.0)).send(client(port, Timeouts()).auth_packet())
    assert err.value.kind == "garbage"


@pytest.mark.integration
def test_nothing_listening_and_unknown_host(peer) -> None:
    port, _ = peer(lambda data, n: None)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        closed = s.getsockname()[1]
    with pytest.raises(RadiusRefused) as err:
        client(closed, Timeouts(1.0)).send(client(closed, Timeouts()).auth_packet())
    assert err.value.kind == "refused"
    bad = RadiusClient("no-such-host.invalid", 1, 2, SECRET, DICT, Timeouts(1.0))
    with pytest.raises(RadiusUnresolved):
        bad.send(bad.auth_packet())


def test_timeouts_are_explicit_and_checked() -> None:
    assert Timeouts.within(3.0, 3) == Timeouts(per_try=1.0, tries=3)
    with pytest.raises(ValueError):
        Timeouts(per_try=0)
    with pytest.raises(ValueError):
        Timeouts(per_try=1, tries=0)


def test_the_secret_stays_out_of_repr() -> None:
    assert "s3cret" not in repr(RadiusClient("h", 1, 2, SECRET, DICT))
