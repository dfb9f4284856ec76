"""Pure protocol: known bytes captured from the real send_nsca, round trips, bad input."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from nsca import crypto, packet
from nsca.errors import BadCRC, BadVersion, CipherError, FieldError, TruncatedPacket
from nsca.result import CheckResult

DATA = Path(__file__).parent / "data"
META = json.loads((DATA / "send_nsca_capture.json").read_text())
IV = bytes.fromhex(META["iv"])
CAPTURES = sorted(META["files"].items())


def expected_results() -> list[CheckResult]:
    return [CheckResult(e["host"], e["service"], e["status"], e["output"])
            for e in META["expected"]]


@pytest.mark.parametrize(("name", "info"), CAPTURES, ids=[n for n, _ in CAPTURES])
def test_decode_bytes_captured_from_send_nsca(name: str, info: dict) -> None:
    raw = (DATA / name).read_bytes()
    size = packet.PACKET_SIZE_LEGACY if info["legacy"] else packet.PACKET_SIZE_V3
    assert len(raw) == 3 * size
    dec = crypto.decryptor(info["method"], IV, META["password"])
    got = [packet.decode_data(dec(raw[i:i + size])) for i in range(0, len(raw), size)]
    assert [p.result for p in got] == expected_results()
    assert {p.timestamp for p in got} == {META["timestamp"]}
    assert all(p.result_id is None for p in got)


@pytest.mark.parametrize(("name", "info"), CAPTURES, ids=[n for n, _ in CAPTURES])
def test_encrypt_reproduces_send_nsca_bytes(name: str, info: dict) -> None:
    raw = (DATA / name).read_bytes()
    size = packet.PACKET_SIZE_LEGACY if info["legacy"] else packet.PACKET_SIZE_V3
    dec = crypto.decryptor(info["method"], IV, META["password"])
    plain = [dec(raw[i:i + size]) for i in range(0, len(raw), size)]
    enc = crypto.encryptor(info["method"], IV, META["password"])
    assert b"".join(enc(p) for p in plain) == raw


@pytest.mark.parametrize("legacy", [False, True])
def test_encoded_fields_match_send_nsca_plaintext(legacy: bool) -> None:
    """Our packet equals send_nsca's, byte for byte, outside its random filler."""
    name = f"send_nsca_m0_{'legacy' if legacy else 'v3'}.bin"
    raw = (DATA / name).read_bytes()
    version = 2 if legacy else 3
    size = packet.packet_size(version)
    for i, res in enumerate(expected_results()):
        theirs = raw[i * size:(i + 1) * size]
        ours = packet.encode_data(res, META["timestamp"], version=version)
        assert len(ours) == size
        assert ours[:2] == theirs[:2] and ours[8:14] == theirs[8:14]
        for start, length in ((14, 64), (78, 128), (206, size - 208)):
            field = theirs[start:start + length]
            text = field[:field.index(b"\0") + 1]
            assert ours[start:start + len(text)] == text


@pytest.mark.parametrize("method", crypto.SUPPORTED)
@pytest.mark.parametrize("version", [3, 2])
def test_round_trip_many_packets_one_connection(method: int, version: int) -> None:
    iv = os.urandom(packet.IV_SIZE)
    enc = crypto.encryptor(method, iv, "pw")
    dec = crypto.decryptor(method, iv, "pw")
    results = [CheckResult(f"h{i}", None if i % 3 == 0 else f"svc {i}", i % 4, f"out é {i}",
                           timestamp=1700000000.5 + i if i % 2 else None) for i in range(10)]
    rid = bytes(range(16))
    wire = [enc(packet.encode_data(r, 42, version=version, result_id=rid if i % 2 else None))
            for i, r in enumerate(results)]
    back = [packet.decode_data(dec(w)) for w in wire]
    assert [b.result for b in back] == results
    assert [b.result_id for b in back] == [rid if i % 2 else None for i in range(10)]
    assert all(b.timestamp == 42 for b in back)


def test_init_packet() -> None:
    iv = bytes(range(128))
    data = packet.encode_init(iv, 1700000000)
    assert len(data) == 132 and data[-4:] == bytes.fromhex("6553f100")
    assert packet.decode_init(data) == (iv, 1700000000)
    with pytest.raises(TruncatedPacket):
        packet.decode_init(data[:-1])


def test_sizes() -> None:
    assert packet.PACKET_SIZE_V3 == 4304
    assert packet.PACKET_SIZE_LEGACY == 720


def test_crc_is_zlib_crc32() -> None:
    assert packet.crc32(b"123456789") == 0xCBF43926


def test_bad_crc_truncated_and_wrong_version() -> None:
    good = packet.encode_data(CheckResult("h", "s", 0, "ok"), 1)
    bad = bytearray(good)
    bad[300] ^= 1
    with pytest.raises(BadCRC):
        packet.decode_data(bytes(bad))
    with pytest.raises(TruncatedPacket):
        packet.decode_data(good[:-1])
    with pytest.raises(BadVersion):
        packet.decode_data(b"\0\x02" + good[2:])


def test_wrong_password_and_wrong_cipher_are_detected() -> None:
    iv = os.urandom(128)
    plain = packet.encode_data(CheckResult("h", "s", 0, "ok"), 1)
    wire = crypto.encryptor(14, iv, "right")(plain)
    with pytest.raises((BadCRC, BadVersion)):
        packet.decode_data(crypto.decryptor(14, iv, "wrong")(wire))
    with pytest.raises((BadCRC, BadVersion)):
        packet.decode_data(crypto.decryptor(3, iv, "right")(wire))


def test_oversized_fields() -> None:
    with pytest.raises(FieldError, match="host name is 64 bytes"):
        packet.encode_data(CheckResult("h" * 64, "s", 0, ""), 1)
    with pytest.raises(FieldError, match="service description"):
        packet.encode_data(CheckResult("h", "s" * 128, 0, ""), 1)
    long = packet.encode_data(CheckResult("h", "s", 0, "x" * 5000), 1)
    assert packet.decode_data(long).result.output == "x" * 4095
    legacy = packet.encode_data(CheckResult("h", "s", 0, "é" * 600), 1, version=2)
    assert packet.decode_data(legacy).result.output == "é" * 255  # cut on a character
    # a field with no terminating NUL (a C peer that overflowed) is refused
    raw = bytearray(packet.encode_data(CheckResult("h", "s", 0, "x"), 1))
    raw[14:78] = b"A" * 64
    raw[4:8] = bytes(4)
    raw[4:8] = packet.crc32(bytes(raw)).to_bytes(4, "big")
    with pytest.raises(FieldError, match="not NUL-terminated"):
        packet.decode_data(bytes(raw))


def test_trailer_ignored_when_it_does_not_check_out() -> None:
    res = CheckResult("h", "s", 0, "ok", timestamp=5.0)
    raw = bytearray(packet.encode_data(res, 1, result_id=b"i" * 16))
    raw[packet.PACKET_SIZE_V3 - 2 - 20] ^= 0xFF  # inside the trailer's id
    raw[4:8] = bytes(4)
    raw[4:8] = packet.crc32(bytes(raw)).to_bytes(4, "big")
    got = packet.decode_data(bytes(raw))
    assert got.result_id is None and got.result.timestamp is None


def test_unknown_method() -> None:
    with pytest.raises(CipherError, match="encryption method 9 is not supported"):
        crypto.encryptor(9, bytes(128), "x")


def test_xor_keystream_equals_per_byte_definition() -> None:
    iv = os.urandom(128)
    pw = b"abc"
    data = os.urandom(720)
    want = bytes(b ^ iv[i % 128] ^ pw[i % 3] for i, b in enumerate(data))
    assert crypto.encryptor(1, iv, pw)(data) == want
