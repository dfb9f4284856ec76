"""The RADIUS decoding boundary: known hostile datagrams, then hypothesis over
arbitrary bytes and over mutated valid packets. Only BadPacket may come out."""

from __future__ import annotations

import hashlib
import logging
import struct

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pyrad import packet as rp

from billing import record_key
from billing.radius_decode import (
    BAD_AUTHENTICATOR,
    MALFORMED,
    UNKNOWN_NAS,
    BadPacket,
    check_header,
    decode,
    decrypt_password,
    split_attributes,
)
from billing.server import load_dictionary
from billing.wire import AttributeTable
from vigil import logs
from vigil.drop_log import DropLog

DICT = load_dictionary()
TABLE = AttributeTable(DICT)
SECRET = b"nextone"
CRAFTED = bytes.fromhex("01070018") + bytes(16) + bytes.fromhex("04067f00")  # issue 9


def secret_for(src: str, nas: str | None) -> tuple[bytes, bool] | None:
    return (SECRET, False) if nas == "164.4.89.20" else None


def acct_stop(conf: str = "o-1") -> bytes:
    pkt = rp.AcctPacket(secret=SECRET, dict=DICT)
    pkt["NAS-IP-Address"] = "164.4.89.20"
    pkt["Acct-Status-Type"] = "Stop"
    pkt["Acct-Session-Id"] = conf
    pkt["Acct-Session-Time"] = 180
    pkt["h323-conf-id"] = conf
    pkt["Cisco-AVPair"] = ["h323-ivr-out=PortaBilling_UserName:193.100.201.1"]
    return pkt.RequestPacket()


def access_request() -> bytes:
    pkt = rp.AuthPacket(secret=SECRET, dict=DICT, authenticator=bytes(range(16)))
    pkt["NAS-IP-Address"] = "164.4.89.20"
    pkt["User-Name"] = "193.100.201.1"
    pkt["User-Password"] = pkt.PwCrypt("secret")
    pkt["Called-Station-Id"] = "441259322891834"
    return pkt.RequestPacket()


def run(raw: bytes, is_auth: bool) -> None:
    """The whole boundary, as the server runs it."""
    decode(check_header(raw, is_auth), "127.0.0.1", secret_for, DICT, TABLE)


def test_the_crafted_datagram_of_issue_9_is_one_counted_drop():
    for is_auth in (True, False):
        raw = CRAFTED if is_auth else b"\x04" + CRAFTED[1:]
        with pytest.raises(BadPacket) as e:
            check_header(raw, is_auth)
        assert e.value.cause == MALFORMED
        assert "attribute 4 (length 6) runs past the end" in e.value.detail


@pytest.mark.parametrize("raw,is_auth,words", [
    (b"", False, "shorter than a RADIUS header"),
    (b"\x04\x01\x00\x14" + bytes(15), False, "shorter than a RADIUS header"),
    (b"\x01\x01\x00\x14" + bytes(16), False, "code 1 on the acct port"),
    (b"\x04\x01\x00\x13" + bytes(16), False, "length field 19 outside"),
    (b"\x04\x01\x10\x01" + bytes(4097), False, "length field 4097 outside"),
    (b"\x04\x01\x00\x40" + bytes(16), False, "length field 64 but the datagram has 20"),
    (b"\x04\x01\x00\x15" + bytes(17), False, "attribute header cut at byte 20"),
    (b"\x04\x01\x00\x16" + bytes(16) + b"\x01\x01", False, "attribute 1 has length 1"),
    (b"\x04\x01\x00\x19" + bytes(16) + b"\x04\x05\x01\x02\x03", False,
     "NAS-IP-Address has length 5"),
    (b"\x01\x01\x00\x1a" + bytes(16) + b"\x50\x06" + bytes(4), True,
     "Message-Authenticator has length 6"),
    (b"\x04\x01\x00\x1a" + bytes(16) + b"\x1a\x06" + bytes(4), False,
     "Vendor-Specific of length 6"),
])
def test_header_and_attribute_lengths_are_checked_before_slicing(raw, is_auth, words):
    with pytest.raises(BadPacket, match=words) as e:
        check_header(raw, is_auth)
    assert e.value.cause == MALFORMED


def test_valid_packets_decode_and_padding_past_the_length_is_ignored():
    d = decode(check_header(acct_stop() + b"junk", False), "127.0.0.1", secret_for, DICT,
               TABLE)
    assert d.request.status_type == "Stop" and d.request.account_id == "193.100.201.1"
    a = decode(check_header(access_request(), True), "127.0.0.1", secret_for, DICT, TABLE)
    assert a.request.called == "441259322891834"
    # deciphered when a check asks for it (the password is checked), not before
    assert a.request.password is None and a.request.sealed_password is not None
    assert a.request.clear_password() == "secret" and a.request.password == "secret"


def test_unknown_nas_and_bad_authenticators_have_their_own_causes():
    raw = acct_stop()
    with pytest.raises(BadPacket) as e:
        decode(check_header(raw, False), "127.0.0.1", lambda s, n: None, DICT, TABLE)
    assert e.value.cause == UNKNOWN_NAS
    with pytest.raises(BadPacket) as e:
        decode(check_header(raw, False), "127.0.0.1", lambda s, n: (b"wrong", False), DICT,
               TABLE)
    assert e.value.cause == BAD_AUTHENTICATOR
    with pytest.raises(BadPacket, match="requires") as e:
        decode(check_header(access_request(), True), "127.0.0.1",
               lambda s, n: (SECRET, True), DICT, TABLE)
    assert e.value.cause == BAD_AUTHENTICATOR


def _fix_acct_authenticator(raw: bytes) -> bytes:
    """Re-sign a mutated accounting request, so mutations reach pyrad and the
    attribute reader instead of stopping at the authenticator."""
    length = min(len(raw), struct.unpack("!H", raw[2:4])[0]) if len(raw) >= 20 else 0
    if length < 20:
        return raw
    body = raw[:4] + bytes(16) + raw[20:length]
    auth = hashlib.md5(body + SECRET).digest()
    return raw[:4] + auth + raw[20:]


FUZZ = settings(max_examples=400, deadline=None,
                suppress_health_check=[HealthCheck.too_slow])


@FUZZ
@given(st.binary(max_size=600), st.booleans())
def test_arbitrary_bytes_raise_nothing_but_bad_packet(raw, is_auth):
    try:
        run(raw, is_auth)
    except BadPacket as exc:
        assert exc.cause in (MALFORMED, UNKNOWN_NAS, BAD_AUTHENTICATOR)


@st.composite
def mutated(draw: st.DrawFn) -> tuple[bytes, bool]:
    is_auth = draw(st.booleans())
    data = bytearray(access_request() if is_auth else acct_stop(draw(st.text(max_size=40))))
    for _ in range(draw(st.integers(1, 6))):
        kind = draw(st.sampled_from(["flip", "insert", "delete", "truncate", "length"]))
        pos = draw(st.integers(0, max(len(data) - 1, 0)))
        if kind == "flip" and data:
            data[pos] = draw(st.integers(0, 255))
        elif kind == "insert":
            data[pos:pos] = draw(st.binary(min_size=1, max_size=8))
        elif kind == "delete" and data:
            del data[pos:pos + draw(st.integers(1, 8))]
        elif kind == "truncate":
            del data[pos:]
        elif kind == "length" and len(data) >= 4:
            data[2:4] = struct.pack("!H", draw(st.integers(0, 0xFFFF)))
    raw = bytes(data)
    if not is_auth and draw(st.booleans()):
        raw = _fix_acct_authenticator(raw)
    return raw, is_auth


@FUZZ
@given(mutated())
def test_mutated_valid_packets_raise_nothing_but_bad_packet(case):
    raw, is_auth = case
    try:
        run(raw, is_auth)
    except BadPacket as exc:
        assert exc.cause in (MALFORMED, UNKNOWN_NAS, BAD_AUTHENTICATOR)


@st.composite
def attribute_lists(draw: st.DrawFn) -> bytes:
    """Valid lengths at the outer level (what check_header lets through),
    anything inside: Vendor-Specifics with sub-attributes that add up or
    do not, unknown vendors, empty values."""
    body = bytearray()
    for _ in range(draw(st.integers(0, 12))):
        code = draw(st.sampled_from([1, 2, 4, 26, 26, 26, 30, 31, 44, 77, 200]))
        if code == 26:
            vendor = draw(st.sampled_from([9, 311, 6618, 12345]))
            inner = bytearray()
            for _ in range(draw(st.integers(1, 4))):
                val = draw(st.binary(max_size=30))
                inner += bytes((draw(st.integers(0, 255)), len(val) + 2)) + val
            if draw(st.booleans()):  # lengths that do not add up
                inner = bytearray(draw(st.binary(min_size=2, max_size=20)))
            value = struct.pack("!I", vendor) + bytes(inner)
        elif code == 4:
            value = bytes((164, 4, 89, 20))
        else:
            value = draw(st.binary(max_size=40))
        value = value[:253]
        body += bytes((code, len(value) + 2)) + value
    return bytes(body)


@FUZZ
@given(attribute_lists(), st.binary(min_size=16, max_size=16))
def test_attributes_split_as_pyrad_decodes_them(body, authenticator):
    """The engine splits attributes itself (pyrad's packet cost a tenth of
    its CPU); what it reads must be exactly what pyrad reads."""
    raw = struct.pack("!BBH", 1, 7, 20 + len(body)) + authenticator + body
    try:
        header = check_header(raw, True)
    except BadPacket:
        return
    ours = split_attributes(header.raw)
    theirs = dict(dict.items(rp.AuthPacket(packet=header.raw, secret=SECRET, dict=DICT)))
    assert ours == theirs
    assert TABLE.decode(ours) == TABLE.decode(theirs)


@FUZZ
@given(st.binary(max_size=128), st.binary(min_size=1, max_size=40),
       st.binary(min_size=16, max_size=16))
def test_passwords_decrypt_as_pyrad_decrypts_them(crypted, secret, authenticator):
    pkt = rp.AuthPacket(secret=secret, authenticator=authenticator, dict=DICT)
    if crypted and len(crypted) % 16 == 0:
        assert decrypt_password(crypted, secret, authenticator) == pkt.PwDecrypt(crypted)
        clear = "pässwörd-" + crypted.hex()[:20]
        assert decrypt_password(pkt.PwCrypt(clear), secret, authenticator) == clear
    else:
        assert decrypt_password(crypted, secret, authenticator) is None


# ------------------------------------------------------------ drop summaries
class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_drops_are_summed_per_source_and_cause_per_interval(caplog):
    clock = Clock()
    drops = DropLog(logging.getLogger("test.drops"), interval=10, max_sources=2, clock=clock)
    with caplog.at_level(logging.WARNING, "test.drops"):
        for _ in range(17_900):
            drops.note("10.1.2.3", "malformed", "attribute 4 runs past the end")
        for _ in range(333):
            drops.note("10.1.2.3", "unknown_nas", "unknown client")
        drops.note("10.9.9.9", "bad_authenticator", "wrong secret")
        for i in range(50):  # spoofed sources beyond the cap
            drops.note(f"192.0.2.{i}", "malformed", "x")
        assert not drops.due()
        clock.now += 10
        assert drops.due()
        drops.flush()
    lines = [r.getMessage() for r in caplog.records]
    assert lines[0].startswith("dropped a packet from 10.1.2.3: malformed:")
    assert lines[1].startswith("dropped a packet from 10.9.9.9: bad authenticator:")
    assert ("dropped 18,233 packets from 10.1.2.3 in 10 s: 17,900 malformed, 333 unknown NAS"
            in lines[2])
    # 10.9.9.9's one drop was told at once: no summary for it; two lines at
    # most per interval for sources, the rest folded into one
    assert lines[3].startswith("dropped 1 packet from 192.0.2.")
    assert lines[4] == "dropped 49 packets from 49 other sources in 10 s"
    assert len(lines) == 5
    assert drops.flush() == 0


# ------------------------------------------------------------ log lines
def test_control_characters_cannot_forge_log_lines(capsys):
    logs.setup("Console", level="INFO")
    try:
        with logs.call_context("c1\n2026-01-01T00:00:00.000 billing.server[1] INFO conf=x\x1b[2J"):
            logging.getLogger("billing.test").warning("user %s", "a\rb\x00\u2028\x85")
        try:
            raise RuntimeError("boom")
        except RuntimeError:
            logging.getLogger("billing.test").exception("failed")
    finally:
        logging.getLogger().handlers.clear()
    err = capsys.readouterr().err
    assert err.count("\n") == 2
    first = err.splitlines()[0]
    assert "conf=c1\\n2026-01-01T00:00:00.000" in first and "\\x1b[2J" in first
    assert "user a\\rb\\x00\\u2028\\x85" in first
    assert all(ch == "\n" or ch >= " " for ch in err)


# ------------------------------------------------------------ record keys
def test_keys_are_whole_or_a_digest_of_the_whole_never_cut():
    short = "x" * 179
    assert record_key.bounded(short, 180) == short
    a, b = "p" * 200 + "A", "p" * 200 + "B"
    ka, kb = record_key.bounded(a, 180), record_key.bounded(b, 180)
    assert ka != kb and len(ka) == len(kb) == 180
    assert record_key.bounded(a, 180) == ka  # stable
    # a whole key is never as long as a digest one, so the two cannot meet
    assert record_key.bounded(ka[:179], 180) != ka


@given(st.text(max_size=400), st.text(max_size=400))
def test_different_keys_never_collide(a, b):
    if a != b:
        assert record_key.session_key(a) != record_key.session_key(b)
        assert record_key.call_key(a) != record_key.call_key(b)
    assert len(record_key.session_key(a)) <= 180 and len(record_key.call_key(a)) <= 128


def test_message_authenticators_are_checked_on_the_raw_bytes():
    pkt = rp.AuthPacket(secret=SECRET, dict=DICT)
    pkt["NAS-IP-Address"] = "164.4.89.20"
    pkt["User-Name"] = "u"
    pkt.add_message_authenticator()
    raw = pkt.RequestPacket()
    d = decode(check_header(raw, True), "127.0.0.1", lambda s, n: (SECRET, True), DICT, TABLE)
    assert d.has_message_authenticator and d.request.user_name == "u"
    for pos in (1, 5, len(raw) - 1):  # identifier, authenticator, the MAC itself
        bad = bytearray(raw)
        bad[pos] ^= 1
        with pytest.raises(BadPacket) as e:
            decode(check_header(bytes(bad), True), "127.0.0.1", secret_for, DICT, TABLE)
        assert e.value.cause == BAD_AUTHENTICATOR


def test_spoofed_sources_cannot_grow_the_drop_table_without_bound(caplog):
    clock = Clock()
    drops = DropLog(logging.getLogger("test.drops"), interval=10, max_sources=3, clock=clock,
                    max_tracked=100)
    with caplog.at_level(logging.WARNING, "test.drops"):
        for i in range(5000):
            drops.note(f"198.51.{i // 256}.{i % 256}", "malformed", "x")
        assert len(drops._sources) == 100
        clock.now += 10
        drops.flush()
    last = caplog.records[-1].getMessage()
    # 3 told at once, 3 summaries, then the fold: at most 2 * max_sources + 1 lines
    assert last == "dropped 4,994 packets from more than 94 other sources in 10 s"
    assert len(caplog.records) == 7


def test_a_signed_accounting_request_is_read_as_an_unsigned_one():
    """Accounting with a Message-Authenticator goes through pyrad (the rare
    shape): same request as without, and a forged one is refused."""
    plain = decode(check_header(acct_stop("ma-1"), False), "127.0.0.1", secret_for, DICT,
                   TABLE)
    pkt = rp.AcctPacket(packet=acct_stop("ma-1"), secret=SECRET, dict=DICT)
    pkt.add_message_authenticator()
    raw = pkt.RequestPacket()
    signed = decode(check_header(raw, False), "127.0.0.1", secret_for, DICT, TABLE)
    assert signed.has_message_authenticator and not plain.has_message_authenticator
    assert signed.request == plain.request
    assert signed.packet.id == pkt.id and signed.packet.secret == SECRET
    at = check_header(raw, False).message_authenticator_at
    bad = bytearray(raw)
    bad[at] ^= 1
    with pytest.raises(BadPacket) as e:
        decode(check_header(_fix_acct_authenticator(bytes(bad)), False), "127.0.0.1",
               secret_for, DICT, TABLE)
    assert e.value.cause == BAD_AUTHENTICATOR
