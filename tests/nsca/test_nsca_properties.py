"""Property-based tests of the wire decoders over arbitrary and mutated bytes.

Whatever arrives, the NSCA packet decoder returns a packet or raises
:class:`ProtocolError`, and what it returns can be written without forging a
command; the NSCA-NG reply decoder returns a line, None or NSCANGError.
"""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from nsca import crypto, packet
from nsca.commandfile import format_command
from nsca.errors import FieldError, NSCANGError, ProtocolError
from nsca.ng import MAX_LINE, REPLIES, parse_reply, split_line
from nsca.result import CheckResult, from_bytes, to_bytes, unsafe_name

SETTINGS = settings(max_examples=300, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow])
names = st.binary(min_size=1, max_size=63).filter(lambda b: b"\0" not in b)
VALID = packet.encode_data(CheckResult("web1", "HTTP", 0, "OK - fine"), 1_700_000_000)


def _decode(data: bytes) -> packet.DataPacket | None:
    try:
        p = packet.decode_data(data)
    except ProtocolError:
        return None
    # whatever came out is either refused or written as exactly one line
    try:
        line = format_command(p.result, p.timestamp)
    except FieldError:
        assert unsafe_name(p.result)
    else:
        assert line.count("\n") == 1 and line.endswith("\n")
        assert to_bytes(line)  # always encodable back to bytes
    return p


@SETTINGS
@given(st.binary(max_size=5000))
def test_arbitrary_bytes(data: bytes) -> None:
    _decode(data)


@SETTINGS
@given(st.sampled_from([packet.PACKET_SIZE_V3, packet.PACKET_SIZE_LEGACY]),
       st.binary(max_size=400), st.integers(0, 255))
def test_arbitrary_bytes_of_a_packet_size(size: int, head: bytes, fill: int) -> None:
    _decode(head[:size].ljust(size, bytes([fill])))


@SETTINGS
@given(st.lists(st.tuples(st.integers(0, packet.PACKET_SIZE_V3 - 1), st.integers(0, 255)),
                min_size=1, max_size=20))
def test_mutated_valid_packet(flips: list[tuple[int, int]]) -> None:
    raw = bytearray(VALID)
    for pos, value in flips:
        raw[pos] = value
    _decode(bytes(raw))


@SETTINGS
@given(st.binary(max_size=200), st.integers(0, packet.PACKET_SIZE_V3 - 1))
def test_mutated_packet_with_crc_fixed(chunk: bytes, pos: int) -> None:
    """Past the CRC: hostile fields that a real client (or attacker) checksummed."""
    raw = bytearray(VALID)
    raw[pos:pos + len(chunk)] = chunk
    raw = raw[:packet.PACKET_SIZE_V3].ljust(packet.PACKET_SIZE_V3, b"\0")
    raw[4:8] = b"\0\0\0\0"
    raw[4:8] = packet.crc32(bytes(raw)).to_bytes(4, "big")
    _decode(bytes(raw))


@SETTINGS
@given(names, st.one_of(st.none(), st.binary(min_size=1, max_size=127).filter(
    lambda b: b"\0" not in b)), st.integers(-32768, 32767), st.binary(max_size=4000))
def test_round_trip_is_byte_exact(host: bytes, service: bytes | None, code: int,
                                  output: bytes) -> None:
    r = CheckResult(from_bytes(host), None if service is None else from_bytes(service), code,
                    from_bytes(output.replace(b"\0", b"")))
    for version in (3, 2):
        p = packet.decode_data(packet.encode_data(r, 5, version=version))
        assert to_bytes(p.result.host) == host
        assert p.result.status == code
        if service is not None:
            assert to_bytes(p.result.service or "") == service
        got = to_bytes(p.result.output)
        assert output.replace(b"\0", b"").startswith(got)


@SETTINGS
@given(st.binary(max_size=packet.PACKET_SIZE_V3 * 2), st.sampled_from([1, 3, 14]))
def test_decrypted_garbage(data: bytes, method: int) -> None:
    dec = crypto.decryptor(method, bytes(range(128)), "pw")
    size = packet.PACKET_SIZE_V3
    for i in range(0, len(data) - size + 1, size):
        _decode(dec(data[i:i + size]))


@SETTINGS
@given(st.binary(max_size=3 * MAX_LINE))
def test_ng_reply_lines(data: bytes) -> None:
    buf = data
    for _ in range(len(data) + 1):
        try:
            line, buf = split_line(buf)
        except NSCANGError:
            return
        if line is None:
            assert b"\n" not in buf and len(buf) <= MAX_LINE
            return
        assert "\n" not in line
        try:
            word, _ = parse_reply(line)
        except NSCANGError:
            continue
        assert word in REPLIES


@SETTINGS
@given(st.sampled_from(REPLIES), st.text(max_size=100).filter(lambda t: "\n" not in t))
def test_ng_replies_parse(word: str, text: str) -> None:
    line, rest = split_line(f"{word} {text}\r\n".encode("utf-8", "replace") + b"MOIN")
    assert line is not None and rest == b"MOIN"
    assert parse_reply(line)[0] == word
