"""Real peers for the plugin tests and the benchmark: FreeRADIUS with a temporary
raddb, an SNTP responder, a vigil.conf, the engine's counters file.

Loopback only, private ports, temporary folders.
"""

from __future__ import annotations

import os
import socket
import struct
import threading
import time
from pathlib import Path

from checks.clock_offset import to_ntp
from vigil.testing.freeradius import FreeRadius
from vigil.testing.freeradius import start_freeradius as _start_freeradius

SECRET = "SecretKey-test"
SELFTEST_USER = "127.0.0.1"
SELFTEST_PASSWORD = "cisco-test"
# the engine's start in every counters file written here: one start, so a plugin
# that compares two files written seconds apart sees no restart between them
STARTED = int(time.time()) - 3600


def write_config(path: Path, state_dir: Path,
                 sections: dict[str, dict[str, object]] | None = None) -> Path:
    """A vigil.conf with the self-test account and secret (mode 0600)."""
    base: dict[str, dict[str, object]] = {
        "Site": {"State_Dir": str(state_dir), "Log_Dir": str(state_dir)},
        "Self Test": {"Shared_Secret": SECRET, "User-Name": SELFTEST_USER,
                      "Password": SELFTEST_PASSWORD, "NAS-IP-Address": "127.0.0.1"},
    }
    for name, values in (sections or {}).items():
        base.setdefault(name, {}).update(values)
    text = ""
    for section, values in base.items():
        text += f"[{section}]\n" + "".join(f"{k}={v}\n" for k, v in values.items()) + "\n"
    path.write_text(text)
    path.chmod(0o600)
    return path


def write_stats(path: Path, **counters: int) -> None:
    """The RADIUS engine's counters file, as billing.server writes it."""
    from vigil import statefile

    # this process's pid: the plugins count only files whose process runs
    base = {"pid": os.getpid(), "started_at": STARTED, "updated_at": int(time.time()),
            "access_requests": 0, "access_accepts": 0, "access_rejects": 0,
            "accounting_requests": 0, "accounting_responses": 0, "accounting_duplicates": 0,
            "dropped_unknown_nas": 0, "dropped_bad_authenticator": 0, "dropped_malformed": 0,
            "db_errors": 0}
    base.update(counters)
    statefile.write_json(path, base)


class NTPResponder:
    """A tiny SNTP server on loopback whose clock runs ``skew`` seconds off ours."""

    def __init__(self, skew: float = 0.0, stratum: int = 2, silent: bool = False) -> None:
        self.skew, self.stratum, self.silent = skew, stratum, silent
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        while True:
            try:
                data, addr = self.sock.recvfrom(512)
            except OSError:
                return
            received = time.time() + self.skew
            if self.silent or len(data) < 48:
                continue
            head = struct.pack("!BBbb", (0 << 6) | (4 << 3) | 4, self.stratum, 6, -20)
            reply = (head + bytes(8) + b"LOCL" + to_ntp(received) + data[40:48]
                     + to_ntp(received) + to_ntp(time.time() + self.skew))
            self.sock.sendto(reply, addr)

    def close(self) -> None:
        self.sock.close()


def start_freeradius() -> FreeRadius:
    """FreeRADIUS on two free loopback ports, the self-test account in its users file."""
    return _start_freeradius(
        SECRET, f'"{SELFTEST_USER}" Cleartext-Password := "{SELFTEST_PASSWORD}"\n',
        prefix="vigil-checks-freeradius-")
