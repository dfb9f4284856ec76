"""bench/radius_load.py, the bench's load generator, against a real
FreeRADIUS: what it counts as answered is what the server accepted, with a
Response Authenticator that the shared secret proves."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from vigil.testing.freeradius import start_freeradius

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[1]
SECRET = "loadsecret"


def requests(path: Path, users: list[str], accounting: bool = False) -> Path:
    with open(path, "w") as f:
        for i, user in enumerate(users):
            f.write(f'NAS-IP-Address = 10.0.0.1\nUser-Name = "{user}"\n')
            if accounting:
                f.write(f'Acct-Status-Type = Stop\nAcct-Session-Id = "s-{i}"\n'
                        f'Acct-Session-Time = {30 + i}\n')
            else:
                f.write('User-Password = "x"\n')
            f.write(f'Called-Station-Id = "1212555{i:04d}"\nh323-conf-id = "c-{i}"\n'
                    'Cisco-AVPair = "h323-ivr-out=PortaBilling_Ignore_Password:YES"\n\n')
    return path


def send(port: int, kind: str, secret: str, tmp_path: Path, *shares: list[Path],
         tries: int = 3, timeout: float = 3.0) -> dict[str, float]:
    secret_file = tmp_path / "secret"
    secret_file.write_text(secret + "\n")
    secret_file.chmod(0o600)
    cmd = [sys.executable, str(ROOT / "bench" / "radius_load.py"), "--port", str(port),
           "--kind", kind, "--secret-file", str(secret_file), "--in-flight", "8",
           "--tries", str(tries), "--timeout", str(timeout)]
    for share in shares:
        cmd += ["--share", ",".join(str(p) for p in share)]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=60, check=True)
    assert secret not in " ".join(cmd)  # the secret travels in its file, not in ps
    return json.loads(done.stdout)


@pytest.fixture
def freeradius():
    users = "".join(f'"u{i}" Auth-Type := Accept\n\th323-credit-time = "60"\n\n'
                    for i in range(50))
    fr = start_freeradius(SECRET, users)
    try:
        yield fr
    finally:
        fr.stop()


def test_every_request_of_every_share_is_answered_once(freeradius, tmp_path):
    a = requests(tmp_path / "a.txt", [f"u{i % 50}" for i in range(300)])
    b = requests(tmp_path / "b.txt", [f"u{i % 50}" for i in range(200)])
    c = requests(tmp_path / "c.txt", [f"u{i % 50}" for i in range(100)])
    out = send(freeradius.auth_port, "auth", SECRET, tmp_path, [a, b], [c])
    assert (out["answered"], out["failed"]) == (600, 0)
    assert 0 < out["seconds"] < 60 and out["cpu_seconds"] >= 0


def test_rejects_count_as_failed(freeradius, tmp_path):
    mixed = requests(tmp_path / "m.txt", ["u1", "nobody", "u2", "stranger", "u3"])
    out = send(freeradius.auth_port, "auth", SECRET, tmp_path, [mixed])
    assert (out["answered"], out["failed"]) == (3, 2)


def test_accounting_authenticators_follow_each_identifier(freeradius, tmp_path):
    # 600 requests through 8 in flight: identifiers are reused, and each
    # reuse needs its own Request Authenticator or FreeRADIUS drops it
    stops = requests(tmp_path / "s.txt", [f"u{i % 50}" for i in range(600)], accounting=True)
    out = send(freeradius.acct_port, "acct", SECRET, tmp_path, [stops])
    assert (out["answered"], out["failed"]) == (600, 0)


def test_replies_not_signed_with_our_secret_are_not_counted(freeradius, tmp_path):
    # FreeRADIUS files accepts without checking the password, and signs its
    # Access-Accept with its own secret: the sender must refuse that reply
    auth = requests(tmp_path / "a.txt", ["u1", "u2"])
    out = send(freeradius.auth_port, "auth", "not-the-secret", tmp_path, [auth],
               tries=2, timeout=0.3)
    assert (out["answered"], out["failed"]) == (0, 2)
    stops = requests(tmp_path / "s.txt", ["u1"], accounting=True)
    out = send(freeradius.acct_port, "acct", "not-the-secret", tmp_path, [stops],
               tries=1, timeout=0.3)
    assert (out["answered"], out["failed"]) == (0, 1)
