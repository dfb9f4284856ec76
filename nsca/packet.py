"""NSCA wire format as pure functions: init packet, data packets, CRC32.

Layout (network byte order; C struct padding made explicit)::

    init packet (132 bytes):  iv[128]  timestamp:u32

    data packet:              version:i16 (=3)  pad[2]  crc32:u32  timestamp:u32
                              return_code:i16  host_name[64]  svc_description[128]
                              plugin_output[N]  pad[2]
        N = 4096 -> 4304 bytes (nsca >= 2.9, "v3")
        N =  512 ->  720 bytes (nsca 2.7, "legacy")

The CRC is zlib's CRC32 over the whole packet with the crc field zeroed.
An empty ``svc_description`` is a host check.

Vigil carries an optional *trailer* in the last 32 bytes of ``plugin_output``,
after the output's terminating NUL, where the C ``send_nsca`` leaves random filler and
the C ``nsca`` never looks: ``b"\\xffVG1"`` + result id (16 bytes) + check time
(float64) + CRC32 of those 28 bytes. A C peer ignores it; a Vigil server uses
the id to drop a batch the relay had to send twice (see docs/nsca.md).
"""

from __future__ import annotations

import os
import struct
import zlib
from dataclasses import dataclass

from nsca.errors import BadCRC, BadVersion, FieldError, TruncatedPacket
from nsca.result import CheckResult, from_bytes, to_bytes

IV_SIZE = 128
INIT_PACKET_SIZE = IV_SIZE + 4
PACKET_VERSION = 3
HOST_LEN = 64
SERVICE_LEN = 128
OUTPUT_LEN_V3 = 4096
OUTPUT_LEN_LEGACY = 512
HEADER = struct.Struct("!hxxIIh")  # version, crc32, timestamp, return_code
_HEADER_END = HEADER.size  # 14
_HOST_END = _HEADER_END + HOST_LEN
_SERVICE_END = _HOST_END + SERVICE_LEN

# 0xFF never occurs in the C client's random filler (it uses '0'..'w').
TRAILER_MAGIC = b"\xffVG1"
TRAILER = struct.Struct("!4s16sdI")  # magic, id, check time, crc32
RESULT_ID_SIZE = 16


def packet_size(version: int) -> int:
    """4304 for ``version`` 3, 720 for 2 (the 2.7 legacy size)."""
    return _SERVICE_END + output_len(version) + 2


def output_len(version: int) -> int:
    if version == 3:
        return OUTPUT_LEN_V3
    if version == 2:
        return OUTPUT_LEN_LEGACY
    raise ValueError(f"packet version {version} is not 3 (v3, 4304 bytes) or 2 (legacy, 720)")


PACKET_SIZE_V3 = packet_size(3)
PACKET_SIZE_LEGACY = packet_size(2)
SIZE_TO_VERSION = {PACKET_SIZE_V3: 3, PACKET_SIZE_LEGACY: 2}


# ------------------------------------------------------------------- init

def encode_init(iv: bytes, timestamp: int) -> bytes:
    if len(iv) != IV_SIZE:
        raise ValueError(f"IV must be {IV_SIZE} bytes, not {len(iv)}")
    return iv + struct.pack("!I", timestamp & 0xFFFFFFFF)


def decode_init(data: bytes) -> tuple[bytes, int]:
    if len(data) != INIT_PACKET_SIZE:
        raise TruncatedPacket(f"init packet is {len(data)} bytes, expected {INIT_PACKET_SIZE}")
    return data[:IV_SIZE], struct.unpack("!I", data[IV_SIZE:])[0]


def new_init(timestamp: int) -> bytes:
    return encode_init(os.urandom(IV_SIZE), timestamp)


# ------------------------------------------------------------------- data

@dataclass(frozen=True)
class DataPacket:
    """A decoded data packet: the result plus what travels around it."""

    result: CheckResult
    timestamp: int
    result_id: bytes | None = None
    size: int = PACKET_SIZE_V3


def crc32(data: bytes) -> int:
    return zlib.crc32(data) & 0xFFFFFFFF


def _field(text: str, size: int, name: str) -> bytes:
    raw = to_bytes(text)
    if b"\0" in raw:
        raise FieldError(f"{name} contains a NUL byte")
    if len(raw) > size - 1:
        raise FieldError(f"{name} is {len(raw)} bytes; at most {size - 1} fit")
    return raw.ljust(size, b"\0")


def _truncate_utf8(raw: bytes, limit: int) -> bytes:
    if len(raw) <= limit:
        return raw
    cut = raw[:limit]
    # Drop a multi-byte character the cut left incomplete; any other byte stays.
    for back in range(1, min(4, len(cut)) + 1):
        b = cut[-back]
        if b & 0xC0 == 0x80:  # continuation byte: keep looking for the lead
            continue
        if b >= 0xC0:
            need = 2 if b < 0xE0 else 3 if b < 0xF0 else 4
            if need > back:
                cut = cut[:-back]
        break
    return cut


def truncate_name(text: str, size: int) -> str:
    """Cut a name to ``size - 1`` bytes, as the C ``send_nsca`` does (``strncpy``)."""
    return from_bytes(to_bytes(text)[:size - 1])


def check_fields(result: CheckResult) -> None:
    """Raise :class:`FieldError` for a result no packet can carry."""
    _field(result.host, HOST_LEN, "host name")
    if result.service is not None:
        if not result.service:
            raise FieldError("service description is empty; use None for a host check")
        _field(result.service, SERVICE_LEN, "service description")


def encode_data(result: CheckResult, timestamp: int, *, version: int = 3,
                result_id: bytes | None = None, padding: bytes | None = None) -> bytes:
    """The plaintext packet (CRC filled in), ready for a cipher.

    ``plugin_output`` that does not fit is cut (as ``send_nsca`` does);
    host and service names that do not fit raise :class:`FieldError`,
    because a cut name would file the result under another service.
    ``padding`` (2 + 2 bytes) fills the struct holes; zeros by default
    (the C client puts random bytes there; they are ignored).
    """
    out_len = output_len(version)
    host = _field(result.host, HOST_LEN, "host name")
    service = _field(result.service or "", SERVICE_LEN, "service description")
    if result.service == "":
        raise FieldError("service description is empty; use None for a host check")
    raw_out = to_bytes(result.output).replace(b"\0", b"")
    trailer = b""
    if result_id is not None or result.timestamp is not None:
        rid = result_id if result_id is not None else bytes(RESULT_ID_SIZE)
        if len(rid) != RESULT_ID_SIZE:
            raise ValueError(f"result id must be {RESULT_ID_SIZE} bytes")
        body = struct.pack("!4s16sd", TRAILER_MAGIC, rid, result.timestamp or 0.0)
        trailer = body + struct.pack("!I", crc32(body))
    room = out_len - 1 - len(trailer)
    raw_out = _truncate_utf8(raw_out, room)
    output = raw_out.ljust(out_len - len(trailer), b"\0") + trailer
    pad = padding if padding is not None else bytes(4)
    head = HEADER.pack(PACKET_VERSION, 0, timestamp & 0xFFFFFFFF, result.status)
    head = head[:2] + pad[:2] + head[4:]
    packet = bytearray(head + host + service + output + pad[2:4])
    struct.pack_into("!I", packet, 4, crc32(bytes(packet)))
    return bytes(packet)


def _text(field: bytes, name: str) -> str:
    end = field.find(b"\0")
    if end < 0:
        raise FieldError(f"{name} is not NUL-terminated (oversized field)")
    return from_bytes(field[:end])


def decode_data(packet: bytes) -> DataPacket:
    """Check and decode a decrypted packet; raises a :class:`ProtocolError`."""
    size = len(packet)
    version = SIZE_TO_VERSION.get(size)
    if version is None:
        raise TruncatedPacket(f"data packet is {size} bytes, expected "
                              f"{PACKET_SIZE_V3} or {PACKET_SIZE_LEGACY}")
    pkt_version, crc, timestamp, code = HEADER.unpack_from(packet)
    if pkt_version != PACKET_VERSION:
        raise BadVersion(f"packet version {pkt_version}, expected {PACKET_VERSION} "
                         "(wrong password or encryption method?)")
    zeroed = packet[:4] + b"\0\0\0\0" + packet[8:]
    if crc32(zeroed) != crc:
        raise BadCRC("CRC32 mismatch (wrong password or encryption method, or corrupt data)")
    host = _text(packet[_HEADER_END:_HOST_END], "host name")
    service = _text(packet[_HOST_END:_SERVICE_END], "service description")
    out_field = packet[_SERVICE_END:_SERVICE_END + output_len(version)]
    output = _text(out_field, "plugin output")
    rid, check_time = _trailer(out_field)
    if not host:
        raise FieldError("host name is empty")
    # A code outside 0..3 is written through, as the C nsca does (Nagios shows UNKNOWN).
    result = CheckResult(host, service or None, code, output, check_time)
    return DataPacket(result, timestamp, rid, size)


def _trailer(out_field: bytes) -> tuple[bytes | None, float | None]:
    tail = out_field[-TRAILER.size:]
    if not tail.startswith(TRAILER_MAGIC) or b"\0" not in out_field[:-TRAILER.size]:
        return None, None
    magic, rid, check_time, crc = TRAILER.unpack(tail)
    if crc32(tail[:-4]) != crc:
        return None, None
    return (rid if rid != bytes(RESULT_ID_SIZE) else None), (check_time or None)
