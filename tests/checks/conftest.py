"""Fixtures for the plugin tests: a real FreeRADIUS, a vigil.conf, a plugin runner.

Plugins run as real subprocesses (``vigil-check NAME ...``) so exit codes,
stdout and the ``-t`` alarm are exactly what Nagios and the scheduler see.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

VIGIL_CHECK = str(Path(sys.executable).with_name("vigil-check"))
SECRET = "SecretKey-test"
SELFTEST_USER = "127.0.0.1"
SELFTEST_PASSWORD = "cisco-test"


@dataclass
class Result:
    rc: int
    out: str
    err: str

    @property
    def line(self) -> str:
        return self.out.rstrip("\n")


def run_check(name: str, *args: str, config: Path | None = None, timeout: float = 30,
              env: dict[str, str] | None = None) -> Result:
    argv = [VIGIL_CHECK, name, *args]
    if config is not None:
        argv += ["--config", str(config)]
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("VIGIL")}
    full_env.update(env or {})
    p = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, env=full_env)
    return Result(p.returncode, p.stdout, p.stderr)


def free_port(kind: int = socket.SOCK_STREAM) -> int:
    with socket.socket(socket.AF_INET, kind) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def write_config(path: Path, state_dir: Path,
                 sections: dict[str, dict[str, object]] | None = None) -> Path:
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


@pytest.fixture
def state_dir(tmp_path: Path) -> Path:
    d = tmp_path / "state"
    d.mkdir()
    return d


@pytest.fixture
def conf(tmp_path: Path, state_dir: Path) -> Path:
    return write_config(tmp_path / "vigil.conf", state_dir)


# ------------------------------------------------------------------ FreeRADIUS
_RADIUSD_CONF = """\
prefix = /usr
exec_prefix = /usr
sysconfdir = /etc
localstatedir = /var
sbindir = /usr/sbin
logdir = {d}
raddbdir = {d}
radacctdir = {d}
name = freeradius
confdir = {d}
modconfdir = {d}
run_dir = {d}
db_dir = {d}
libdir = /usr/lib/freeradius
pidfile = {d}/radiusd.pid
max_request_time = 30
cleanup_delay = 0
hostname_lookups = no
log {{
  destination = stdout
}}
security {{
  allow_core_dumps = no
  reject_delay = 0
}}
thread pool {{
  start_servers = 2
  max_servers = 4
  min_spare_servers = 1
  max_spare_servers = 3
}}
client selftest {{
  ipaddr = 127.0.0.1
  secret = {secret}
}}
modules {{
  files {{
    filename = {d}/users
  }}
  pap {{
  }}
  always ok {{
    rcode = ok
  }}
}}
server default {{
  listen {{
    type = auth
    ipaddr = 127.0.0.1
    port = {auth}
  }}
  listen {{
    type = acct
    ipaddr = 127.0.0.1
    port = {acct}
  }}
  authorize {{
    files
    pap
  }}
  authenticate {{
    Auth-Type PAP {{
      pap
    }}
  }}
  preacct {{
  }}
  accounting {{
    ok
  }}
}}
"""


@dataclass
class FreeRadius:
    dir: Path
    auth_port: int
    acct_port: int
    proc: subprocess.Popen[bytes]


@pytest.fixture(scope="session")
def freeradius() -> Iterator[FreeRadius]:
    binary = shutil.which("freeradius") or shutil.which("radiusd")
    if binary is None:
        pytest.skip("freeradius is not installed (make setup)")
    d = Path(tempfile.mkdtemp(prefix="vigil-checks-freeradius-"))
    auth, acct = free_port(socket.SOCK_DGRAM), free_port(socket.SOCK_DGRAM)
    (d / "radiusd.conf").write_text(_RADIUSD_CONF.format(d=d, secret=SECRET, auth=auth,
                                                         acct=acct))
    (d / "radiusd.conf").chmod(0o600)
    (d / "users").write_text(f'"{SELFTEST_USER}" Cleartext-Password := "{SELFTEST_PASSWORD}"\n')
    (d / "dictionary").write_text("")
    log = open(d / "radiusd.log", "wb")  # noqa: SIM115
    proc = subprocess.Popen([binary, "-f", "-d", str(d), "-l", "stdout"], stdout=log,
                            stderr=subprocess.STDOUT, start_new_session=True)
    deadline = time.monotonic() + 15
    while b"Ready to process requests" not in (d / "radiusd.log").read_bytes():
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            raise RuntimeError("freeradius did not start:\n"
                               + (d / "radiusd.log").read_text(errors="replace")[-2000:])
        time.sleep(0.05)
    yield FreeRadius(d, auth, acct, proc)
    proc.terminate()
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()
    log.close()
    shutil.rmtree(d, ignore_errors=True)
