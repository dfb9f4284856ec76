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
        # credit times, the currency): each value is encoded once, kept per
        # attribute name in a dict of strings and bytes. Why not keyed by
        # (name, value) tuples, or whole bodies by their tuple of pairs, as
        # before: every kept tuple is an object the garbage collector walks,
        # and a reply carrying a request's own value (the called number) is
        # new every time. 4,096 bodies of ten pairs made each young
        # collection walk about 20,000 survivors: 10-20 ms with the packet
        # loop stopped, every 1.7 s at 1,000 authorizations/s, and that was
        # the p99 (gc.callbacks in the engine, docs/billing.md). A dict that
        # holds only strings and bytes is not tracked by the collector at
        # all. Bounded per name, since a value can come from a request.
        self._encoded: dict[str, dict[str, bytes]] = {}

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
        kept = self._encoded.get(name)
        data = kept.get(value) if kept is not None else None
        if data is None:
            data = self._encode(name, value)  # an unknown name raises: nothing kept
            if kept is None:
                kept = self._encoded[name] = {}
            elif len(kept) >= ENCODED_KEPT:
                kept.clear()
            kept[value] = data
        return data

    def encode_body(self, attributes: Iterable[tuple[str, str]]) -> bytes:
        """The attributes of a reply, encoded in order."""
        encode = self.encode_attribute
        return b"".join([encode(n, v) for n, v in attributes])

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
