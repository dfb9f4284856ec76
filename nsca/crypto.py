"""NSCA ciphers, one object per connection and direction.

Methods (numbers as in ``nsca.cfg``): 0 none, 1 XOR, 2 DES, 3 3DES,
14 RIJNDAEL-128 (AES). The other mcrypt algorithms (CAST, Blowfish, ...) are
refused: OpenSSL 3 has no 8-bit CFB for them. The mcrypt ones run as the
C code runs them: 8-bit CFB, key = password cut or zero-padded to the
algorithm's *maximum* key size (24 for 3DES, 32 for RIJNDAEL-128: AES-256),
IV = the first block-size bytes of the server's 128-byte IV, and one cipher
state for the whole connection (packets continue the stream).

XOR restarts for every packet: byte i is ``iv[i % 128] ^ password[i % len]``.
The keystream for a packet size is computed once per connection and applied
as one big-integer XOR (the per-byte loop is ten times slower).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

from cryptography.hazmat.decrepit.ciphers import algorithms as decrepit
from cryptography.hazmat.decrepit.ciphers.modes import CFB8
from cryptography.hazmat.primitives.ciphers import Cipher, CipherAlgorithm, algorithms

from nsca.errors import CipherError
from nsca.packet import IV_SIZE

NONE = 0
XOR = 1

# method -> (name, max key size, block size, algorithm factory)
_MCRYPT: dict[int, tuple[str, int, int, Callable[[bytes], CipherAlgorithm]]] = {
    2: ("DES", 8, 8, lambda k: decrepit.TripleDES(k * 3)),
    3: ("3DES", 24, 8, decrepit.TripleDES),
    14: ("RIJNDAEL-128", 32, 16, algorithms.AES),
}

METHOD_NAMES = {NONE: "none", XOR: "XOR", **{m: v[0] for m, v in _MCRYPT.items()}}
SUPPORTED = tuple(sorted(METHOD_NAMES))
TESTED_WITH_C_PEER = (0, 1, 3, 14)


def method_name(method: int) -> str:
    return METHOD_NAMES.get(method, f"method {method}")


def check_method(method: int) -> int:
    if method not in METHOD_NAMES:
        allowed = ", ".join(f"{m} ({n})" for m, n in sorted(METHOD_NAMES.items()))
        raise CipherError(f"encryption method {method} is not supported; use one of {allowed}")
    return method


class Crypter(Protocol):
    def __call__(self, data: bytes) -> bytes: ...


def _password_bytes(password: str | bytes) -> bytes:
    # surrogateescape: a password read from a file as bytes goes back as those bytes
    return password.encode("utf-8", "surrogateescape") if isinstance(password, str) else password


class _XOR:
    def __init__(self, iv: bytes, password: bytes) -> None:
        self._iv = iv
        # C strlen(): the password ends at its first NUL
        self._pw = password.split(b"\0", 1)[0]
        self._keys: dict[int, int] = {}

    def _key(self, n: int) -> int:
        key = self._keys.get(n)
        if key is None:
            key = int.from_bytes((self._iv * (n // IV_SIZE + 1))[:n], "big")
            if self._pw:
                pw = (self._pw * (n // len(self._pw) + 1))[:n]
                key ^= int.from_bytes(pw, "big")
            self._keys[n] = key
        return key

    def __call__(self, data: bytes) -> bytes:
        n = len(data)
        return (int.from_bytes(data, "big") ^ self._key(n)).to_bytes(n, "big")


def _identity(data: bytes) -> bytes:
    return data


def _mcrypt_cfb(method: int, iv: bytes, password: bytes, encrypt: bool) -> Crypter:
    _name, key_size, block, factory = _MCRYPT[method]
    pw = password.split(b"\0", 1)[0]
    key = pw[:key_size].ljust(key_size, b"\0")
    cipher = Cipher(factory(key), CFB8(iv[:block]))
    ctx = cipher.encryptor() if encrypt else cipher.decryptor()
    return ctx.update


def make(method: int, iv: bytes, password: str | bytes, *, encrypt: bool) -> Crypter:
    """A callable that encrypts (or decrypts) successive buffers of one connection."""
    check_method(method)
    if len(iv) != IV_SIZE:
        raise CipherError(f"IV must be {IV_SIZE} bytes, not {len(iv)}")
    pw = _password_bytes(password)
    if method == NONE:
        return _identity
    if method == XOR:
        return _XOR(iv, pw)  # symmetric
    try:
        return _mcrypt_cfb(method, iv, pw, encrypt)
    except ValueError as exc:
        raise CipherError(f"{method_name(method)}: {exc}") from exc


def encryptor(method: int, iv: bytes, password: str | bytes) -> Crypter:
    return make(method, iv, password, encrypt=True)


def decryptor(method: int, iv: bytes, password: str | bytes) -> Crypter:
    return make(method, iv, password, encrypt=False)
