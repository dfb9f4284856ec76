"""One exception tree for everything NSCA::

    NSCAError
    ├── ProtocolError            bytes that are not a valid NSCA packet
    │   ├── TruncatedPacket      fewer bytes than a whole packet
    │   ├── BadCRC               CRC32 mismatch (often: wrong password or cipher)
    │   ├── BadVersion           packet_version is not 3 (often: wrong password or cipher)
    │   └── FieldError           a field is too long, not terminated or not text
    ├── CipherError              unknown or unsupported encryption method, bad key
    ├── ConnectionFailed         cannot reach or talk to the peer (carries the OSError)
    ├── SpoolError               the on-disk spool cannot be written or read
    └── NSCANGError              the NSCA-NG peer refused or broke the dialogue

Socket and OS errors are translated at the boundary (client, relay) with
``raise ... from exc`` so the cause is kept.
"""

from __future__ import annotations


class NSCAError(Exception):
    """Base of every NSCA failure."""


class ProtocolError(NSCAError):
    """Bytes that are not a valid NSCA packet."""


class TruncatedPacket(ProtocolError):
    pass


class BadCRC(ProtocolError):
    pass


class BadVersion(ProtocolError):
    pass


class FieldError(ProtocolError):
    pass


class CipherError(NSCAError):
    pass


class ConnectionFailed(NSCAError):
    pass


class SpoolError(NSCAError):
    pass


class NSCANGError(NSCAError):
    pass
