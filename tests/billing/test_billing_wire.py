"""Replies encoded by billing.wire, read back by pyrad's own decoder."""

from __future__ import annotations

import pytest
from pyrad import packet as rp

from billing.server import load_dictionary
from billing.wire import AttributeTable, WireError, encode_reply

DICT = load_dictionary()
TABLE = AttributeTable(DICT)


def request(with_ma: bool) -> rp.AuthPacket:
    req = rp.AuthPacket(code=rp.AccessRequest, secret=b"nextone", dict=DICT, id=77)
    req["User-Name"] = "193.100.201.1"
    if with_ma:
        req.add_message_authenticator()
    req.RequestPacket()
    return req


@pytest.mark.parametrize("with_ma", [False, True])
def test_reply_verifies_and_decodes_in_pyrad(with_ma):
    req = request(with_ma)
    attrs = [("h323-credit-time", "180"), ("h323-return-code", "0"),
             ("h323-ivr-in", "Tariff:WHOLESALE"), ("h323-ivr-in", "DURATION:180"),
             ("Session-Timeout", "180"), ("Reply-Message", "ok")]
    raw = encode_reply(TABLE, rp.AccessAccept, req.id, req.authenticator, b"nextone", attrs,
                       message_authenticator=with_ma)
    reply = rp.Packet(packet=raw, secret=b"nextone", dict=DICT)
    assert req.VerifyReply(reply, raw)
    assert reply.code == rp.AccessAccept
    assert reply["h323-credit-time"] == ["180"]
    assert reply["h323-ivr-in"] == ["Tariff:WHOLESALE", "DURATION:180"]
    assert reply["Session-Timeout"] == [180]
    if with_ma:
        assert reply.verify_message_authenticator(original_authenticator=req.authenticator)
    # a client holding another secret rejects it
    assert not rp.AuthPacket(code=rp.AccessRequest, secret=b"other", dict=DICT,
                             id=77, authenticator=req.authenticator).VerifyReply(reply, raw)


def test_decode_names_values_and_unknowns():
    req = rp.AcctPacket(secret=b"s", dict=DICT)
    req["Acct-Status-Type"] = "Stop"
    req["NAS-IP-Address"] = "164.4.89.20"
    req["h323-conf-id"] = "abc"
    req[26] = [b"\x00\x00\x99\x99\x01\x05abc"]
    raw = req.RequestPacket()
    decoded = TABLE.decode(rp.AcctPacket(packet=raw, secret=b"s", dict=DICT))
    assert decoded["Acct-Status-Type"] == ["Stop"]
    assert decoded["NAS-IP-Address"] == ["164.4.89.20"]
    assert decoded["h323-conf-id"] == ["abc"]
    assert any(k.startswith("Attr-") for k in decoded)


def test_unknown_or_oversized_reply_attributes_are_refused():
    with pytest.raises(WireError, match="not in the dictionary"):
        TABLE.encode_attribute("No-Such-Attribute", "x")
    with pytest.raises(WireError, match="too long"):
        TABLE.encode_attribute("Reply-Message", "x" * 300)


def test_encoded_values_are_kept_bounded_and_out_of_the_collectors_sight(monkeypatch):
    """A body is its attributes encoded one by one, in order; each value is
    encoded once and kept, at most ENCODED_KEPT per attribute (a reply can
    carry a request's value), in dicts of strings and bytes that the garbage
    collector does not track: kept key tuples were the young objects each
    collection walked, the engine's p99 (docs/billing.md)."""
    import gc

    import billing.wire as wire

    table = AttributeTable(DICT)
    attrs = [("h323-credit-time", "3600"), ("h323-return-code", "0")]
    one_by_one = b"".join(table.encode_attribute(n, v) for n, v in attrs)
    assert table.encode_body(attrs) == one_by_one
    assert table.encode_attribute("h323-credit-time", "3600") is \
        table.encode_attribute("h323-credit-time", "3600")  # kept
    assert table.encode_body(attrs[::-1]) != one_by_one  # the order is the packet's
    monkeypatch.setattr(wire, "ENCODED_KEPT", 3)
    for t in range(10):
        table.encode_body([("h323-credit-time", str(t)), ("h323-ivr-in", f"CLD:{t}")])
    assert 0 < len(table._encoded["h323-credit-time"]) <= 3
    assert 0 < len(table._encoded["h323-ivr-in"]) <= 3
    assert not any(gc.is_tracked(kept) for kept in table._encoded.values())
    with pytest.raises(WireError):
        table.encode_body([("No-Such-Attribute", "1")])
    assert "No-Such-Attribute" not in table._encoded
