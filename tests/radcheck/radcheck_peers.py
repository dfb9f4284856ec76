"""Real peers for the radcheck tests: FreeRADIUS on a temp raddb, vigil.conf files.

FreeRADIUS (Debian ``freeradius``) runs a minimal generated configuration:
the ``files`` module with the self-test account, one client (127.0.0.1)
with the self-test secret, on a free port, logging to stdout.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

from vigil.testing import freeradius
from vigil.testing.reaper import die_with_parent

VENV_BIN = Path(sys.executable).parent
VIGIL = str(VENV_BIN / "vigil")
REPO = Path(__file__).resolve().parents[2]

SECRET = "SelfTestSecret"
USER = "127.0.0.1"
PASSWORD = "cisco"


class FreeRadius(freeradius.FreeRadius):
    """The shared harness with the self-test account in its users file."""

    def __init__(self, folder: Path, port: int | None = None, secret: str = SECRET,
                 user: str = USER, password: str = PASSWORD) -> None:
        super().__init__(folder, secret=secret, auth_port=port,
                         users=f'"{user}" Cleartext-Password := "{password}"\n')


def write_conf(path: Path, sections: dict[str, dict[str, object]]) -> Path:
    lines: list[str] = []
    for section, options in sections.items():
        lines.append(f"[{section}]")
        lines += [f"{k}={v}" for k, v in options.items()]
        lines.append("")
    path.write_text("\n".join(lines))
    os.chmod(path, 0o600)  # secrets inside
    return path


def base_conf(tmp_path: Path, *, radius_port: int, smtp_port: int,
              extra: dict[str, dict[str, object]] | None = None
              ) -> dict[str, dict[str, object]]:
    """A vigil.conf for tests: everything under tmp_path, fast self-test."""
    sections: dict[str, dict[str, object]] = {
        "Site": {"Role": "primary", "State_Dir": tmp_path / "state",
                 "Log_Dir": tmp_path / "log", "Host_Name": "vigil-test", "Name": "test"},
        "Global": {"last_resort_email": "oncall@example.com",
                   "email_header_from": "vigil@example.com"},
        "Email": {"SMTP_Host": "127.0.0.1", "SMTP_Port": smtp_port, "SMTP_Timeout_sec": 2,
                  "Max_Sequential_Emails": 5, "Look_Behind_sec": 450,
                  "Mail_Templates_Dir": REPO / "etc" / "Mail_Templates"},
        "Self Test": {"Timeout_sec": 1, "Test_Frequency_sec": 1, "Errors_Before_Restart": 2,
                      "Path_To_Lock_File": tmp_path / "run" / "radcheck.pid",
                      "NAS-IP-Address": "127.0.0.1", "Shared_Secret": SECRET,
                      "User-Name": USER, "Password": PASSWORD},
        "Radius": {"Host": "127.0.0.1", "Auth_Port": radius_port, "Program": "freeradius"},
        "Supervisor": {"Config_File": REPO / "etc" / "supervisord.conf"},
        "Log": {"Log_To": "Console", "Level": "INFO"},
    }
    for section, options in (extra or {}).items():
        sections.setdefault(section, {}).update(options)
    return sections


class Appliance:
    """``vigil supervisord`` on a test vigil.conf: real supervisord, real programs."""

    def __init__(self, conf: Path, args: list[str]) -> None:
        self.conf = conf
        self.args = args
        self.out = conf.parent / "supervisord.out"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> Appliance:
        with open(self.out, "wb") as fh:
            self.proc = subprocess.Popen([VIGIL, "-c", str(self.conf), "supervisord",
                                          *self.args], stdout=fh, stderr=subprocess.STDOUT,
                                         preexec_fn=die_with_parent)
        return self

    def vigil(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([VIGIL, "-c", str(self.conf), *args], capture_output=True,
                              text=True, timeout=60)

    def status(self) -> dict | None:
        r = self.vigil("status", "--json")
        if r.returncode not in (0, 1) or not r.stdout:
            return None
        return json.loads(r.stdout)

    def programs(self) -> dict[str, dict]:
        s = self.status()
        return {p["name"]: p for p in s["programs"]} if s else {}

    def pid(self, name: str) -> int:
        return int(self.programs()[name]["pid"])

    def all_running(self, names: set[str]) -> bool:
        progs = self.programs()
        return set(progs) >= names and all(progs[n]["state"] == "RUNNING" for n in names)

    def stop(self, timeout: float = 60.0) -> int:
        if self.proc is None:
            return 0
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                return self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
                raise
        return self.proc.returncode


def radclient_auth(port: int, secret: str, tmp: Path, user: str = USER,
                   password: str = PASSWORD) -> bool:
    """A real gateway's Access-Request (radclient); the secret from a 0600 file, not argv."""
    secret_file = tmp / "radclient.secret"
    secret_file.write_text(secret + "\n")
    os.chmod(secret_file, 0o600)
    r = subprocess.run(["radclient", "-r", "1", "-t", "2", "-S", str(secret_file),
                        f"127.0.0.1:{port}", "auth"],
                       input=f'User-Name = "{user}", User-Password = "{password}", '
                             'NAS-IP-Address = 127.0.0.1\n',
                       capture_output=True, text=True, timeout=30)
    return r.returncode == 0 and "Access-Accept" in r.stdout
