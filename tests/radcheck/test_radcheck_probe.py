"""The self-test request against a real FreeRADIUS, and against peers that misbehave."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator

import pytest
from pyrad import packet as radpacket

from radcheck.probe import SelfTest, build_request, dictionary, judge, probe
from tests.radcheck.radcheck_peers import PASSWORD, SECRET, USER, FreeRadius
from vigil.testing.ports import free_udp_port
from vigil.testing.udp_peer import UdpPeers

pytestmark = pytest.mark.integration  # real processes: vigil commands, servers, plugins


def selftest(port: int, *, secret: str = SECRET, password: str = PASSWORD,
             timeout: float = 1.0) -> SelfTest:
    return SelfTest("127.0.0.1", port, secret.encode(), "127.0.0.1", USER, password, timeout)


def test_accept_from_freeradius(freeradius: FreeRadius) -> None:
    result = probe(selftest(freeradius.port))
    assert result.ok and result.kind == "accept" and result.error is None
    assert result.rtt_ms is not None and result.rtt_ms > 0


def test_wrong_password_is_a_reject(freeradius: FreeRadius) -> None:
    result = probe(selftest(freeradius.port, password="wrong"))
    assert not result.ok and result.kind == "reject"
    assert "Access-Reject for 127.0.0.1" in (result.error or "")


def test_wrong_secret_towards_freeradius_is_a_failure(freeradius: FreeRadius) -> None:
    # FreeRADIUS drops a request whose Message-Authenticator fails: no answer at all.
    result = probe(selftest(freeradius.port, secret="NotTheSecret"))
    assert not result.ok and result.kind == "timeout"
    out = freeradius.log_file.read_text()
    assert "Shared secret is incorrect" in out


def test_nothing_listening_is_refused() -> None:
    result = probe(selftest(free_udp_port()))
    assert not result.ok and result.kind == "refused"
    assert "nothing listens" in (result.error or "")


@pytest.fixture
def responder() -> Iterator[Callable[[Callable[[bytes], bytes | None]], int]]:
    """A UDP peer on loopback that answers each datagram with ``answer(request)``."""
    with contextlib.closing(UdpPeers()) as peers:
        yield lambda answer: peers.start(lambda data, _n: answer(data))[0]


def _signed_reply(data: bytes, secret: bytes, code: int = radpacket.AccessAccept) -> bytes:
    req = radpacket.AuthPacket(packet=data, secret=secret, dict=dictionary())
    reply = req.CreateReply()
    reply.code = code
    return reply.ReplyPacket()


def test_engine_answering_with_another_secret_is_garbage(responder) -> None:
    port = responder(lambda data: _signed_reply(data, b"OtherSecret"))
    result = probe(selftest(port))
    assert not result.ok and result.kind == "garbage"
    assert "wrong shared secret" in (result.error or "")


def test_correctly_signed_accept_from_another_peer_is_ok(responder) -> None:
    port = responder(lambda data: _signed_reply(data, SECRET.encode()))
    assert probe(selftest(port)).ok


def test_unexpected_code_is_garbage(responder) -> None:
    port = responder(lambda data: _signed_reply(data, SECRET.encode(),
                                                code=radpacket.AccessChallenge))
    result = probe(selftest(port))
    assert result.kind == "garbage" and "unexpected reply code 11" in (result.error or "")


def test_random_bytes_are_garbage(responder) -> None:
    port = responder(lambda data: bytes([2, data[1]]) + b"\xff" * 30)
    result = probe(selftest(port))
    assert not result.ok and result.kind == "garbage"


def test_short_datagram_is_garbage(responder) -> None:
    port = responder(lambda data: b"\x02\x01")
    result = probe(selftest(port))
    assert result.kind == "garbage" and "shorter than a RADIUS header" in (result.error or "")


def test_answer_to_another_request_is_ignored_until_timeout(responder) -> None:
    def other_id(data: bytes) -> bytes:
        raw = bytearray(_signed_reply(data, SECRET.encode()))
        raw[1] = (raw[1] + 1) % 256
        return bytes(raw)

    result = probe(selftest(responder(other_id)))
    assert result.kind == "timeout"


def test_judge_is_pure() -> None:
    t = selftest(1812)
    req = build_request(t, 7)
    reply = _signed_reply(req.RequestPacket(), SECRET.encode())
    assert judge(req, reply, t, 1.0).ok
    assert judge(req, reply[:1] + bytes([8]) + reply[2:], t, 1.0) is None


def test_secrets_stay_out_of_repr() -> None:
    text = repr(selftest(1812, secret="TopSecret", password="Hunter2"))
    assert "TopSecret" not in text and "Hunter2" not in text
