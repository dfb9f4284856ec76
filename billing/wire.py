"""Fast paths of the RADIUS wire format: attribute values out of a decoded
pyrad packet, and replies built straight to bytes.

pyrad decodes the request (and checks it); building the reply through pyrad
objects cost half of an authorization's time, so replies are encoded here
as pure functions, tested against pyrad's decoder. RFC 2865 section 3
(response authenticator) and RFC 2869 section 5.14 (Message-Authenticator).
"""

from __future__ import annotations

import hashlib
import hmac
import socket
import struct
from collections.abc import Iterable, Mapping
from typing import Any

from pyrad.dictionary import Dictionary

MESSAGE_AUTHENTICATOR = 80
VENDOR_SPECIFIC = 26


class WireError(ValueError):
    """A reply that cannot be encoded (unknown attribute, value too long)."""


ENCODED_KEPT = 4096


class AttributeTable:
    """Attribute codes and names of one dictionary, both ways."""

    def __init__(self, dictionary: Dictionary) -> None:
        self.by_key: dict[Any, tuple[str, str, dict[bytes, str]]] = {}
        self.by_name: dict[str, tuple[int, int, str]] = {}
        vendors = dict(dictionary.vendors.forward)
        # TLV attributes nest; billing.radius_decode leaves those to pyrad
        self.has_tlv = False
        for name in list(dictionary.attributes):
            a = dictionary.attributes[name]
            self.has_tlv = self.has_tlv or a.type == "tlv"
            vendor_id = vendors.get(a.vendor, 0) if a.vendor else 0
            key: Any = (vendor_id, a.code) if vendor_id else a.code
            values = {v: k for k, v in reversed(list(dict(a.values.forward).items()))}
            self.by_key[key] = (a.name, a.type, values)
            self.by_name[a.name] = (vendor_id, a.code, a.type)
        # Replies repeat a few attributes with few values (return codes,
        # credit times, the conf-id aside): each is encoded once. Bounded,
        # since a value can come from a request (it is then encoded anew).
        self._encoded: dict[tuple[str, str], bytes] = {}
        # Whole reply bodies too: an engine's accepts are mostly the same few
        # attribute lists (the return code, the cap as the credit time).
        self._bodies: dict[tuple[tuple[str, str], ...], bytes] = {}

    def decode(self, pkt: Mapping[Any, list[Any]],
               skip: Iterable[Any] = (2, MESSAGE_AUTHENTICATOR)) -> dict[str, list[str]]:
        """Attribute name -> text values of a pyrad packet (its raw items)."""
        out: dict[str, list[str]] = {}
        skipped = set(skip)
        for key, raws in pkt.items():
            if key in skipped:
                continue
            meta = self.by_key.get(key)
            if meta is None:
                name = f"Attr-{key[0]}-{key[1]}" if isinstance(key, tuple) else f"Attr-{key}"
                out.setdefault(name, []).extend(
                    r.hex() if isinstance(r, bytes) else str(r) for r in raws)
                continue
            name, typ, values = meta
            dest = out.setdefault(name, [])
            for r in raws:
                if not isinstance(r, bytes):
                    dest.append(str(r))
                elif typ == "string":
                    dest.append(r.decode("utf-8", "replace"))
                elif typ == "integer" and len(r) == 4:
                    dest.append(values.get(r) or str(int.from_bytes(r, "big")))
                elif typ == "ipaddr" and len(r) == 4:
                    dest.append(socket.inet_ntoa(r))
                else:
                    dest.append(r.hex())
        return out

    def encode_attribute(self, name: str, value: str) -> bytes:
        key = (name, value)
        data = self._encoded.get(key)
        if data is None:
            data = self._encode(name, value)
            if len(self._encoded) >= ENCODED_KEPT:
                self._encoded.clear()
            self._encoded[key] = data
        return data

    def encode_body(self, attributes: Iterable[tuple[str, str]]) -> bytes:
        """The attributes of a reply, encoded in order."""
        key = tuple(attributes)
        body = self._bodies.get(key)
        if body is None:
            body = b"".join([self.encode_attribute(n, v) for n, v in key])
            if len(self._bodies) >= ENCODED_KEPT:
                self._bodies.clear()
            self._bodies[key] = body
        return body

    def _encode(self, name: str, value: str) -> bytes:
        try:
            vendor_id, code, typ = self.by_name[name]
        except KeyError:
            raise WireError(f"attribute {name!r} is not in the dictionary") from None
        if typ == "integer":
            data = struct.pack("!I", int(value))
        elif typ == "ipaddr":
            data = socket.inet_aton(value)
        else:
            data = value.encode("utf-8")
        if vendor_id:
            inner = bytes((code, len(data) + 2)) + data
            data = struct.pack("!I", vendor_id) + inner
            code = VENDOR_SPECIFIC
        if len(data) > 253:
            raise WireError(f"value of {name} is too long ({len(data)} bytes)")
        return bytes((code, len(data) + 2)) + data


def encode_reply(table: AttributeTable, code: int, ident: int, request_authenticator: bytes,
                 secret: bytes, attributes: Iterable[tuple[str, str]],
                 message_authenticator: bool = False) -> bytes:
    body = table.encode_body(attributes)
    if message_authenticator:
        # First attribute, as BlastRADIUS (CVE-2024-3596) advice has it.
        body = bytes((MESSAGE_AUTHENTICATOR, 18)) + bytes(16) + body
    length = 20 + len(body)
    if length > 4096:
        raise WireError(f"reply of {length} bytes exceeds RADIUS's 4096")
    header = struct.pack("!BBH", code, ident, length)
    if message_authenticator:
        mac = hmac.new(secret, header + request_authenticator + body, "md5").digest()
        body = body[:2] + mac + body[18:]
    auth = hashlib.md5(header + request_authenticator + body + secret).digest()
    return header + auth + body
