"""A real `vigil radiusd` process for tests and benchmarks (billing's test support).

``BillingSandbox`` writes a config (own state dir, free UDP ports, the given
database URL), upgrades the schema, provisions a document (the demo by
default) and runs the engine as a subprocess, ready when it answers the
self-test account.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

from pyrad import packet as rp

from vigil.radius_client import RadiusClient, RadiusError, Timeouts
from vigil.testing.ports import free_udp_port
from vigil.testing.reaper import die_with_parent

if TYPE_CHECKING:
    import socket

    from billing.server import RadiusServer

ROOT = Path(__file__).resolve().parents[1]
DEMO = ROOT / "etc" / "demo" / "provision.yaml"
SELFTEST_SECRET = "SecretKey"


class BillingSandbox:
    def __init__(self, db_url: str | None = None, base: Path | None = None,
                 provision: Path | None = DEMO, extra: str = "", processes: int = 1,
                 auth_port: int | None = None, acct_port: int | None = None,
                 radius: str = "", master: str = "") -> None:
        self.base = Path(base or tempfile.mkdtemp(prefix="vigil-billing-"))
        self.base.mkdir(parents=True, exist_ok=True)
        self.state = self.base / "state"
        # Ports given: another engine of the same cluster (SO_REUSEPORT).
        self.auth_port = auth_port or free_udp_port()
        self.acct_port = acct_port or free_udp_port()
        self.db_url = db_url or f"sqlite:///{self.state / 'billing.db'}"
        self.log_file = self.base / "billing.log"
        self.config = self.base / "vigil.conf"
        self.config.write_text(
            f"[Site]\nState_Dir={self.state}\nLog_Dir={self.base}\n"
            f"[Master]\nURL={self.db_url}\n{master}"
            f"[Radius]\nHost=127.0.0.1\nAuth_Port={self.auth_port}\n"
            f"Acct_Port={self.acct_port}\nStats_Interval_sec=1\nProcesses={processes}\n{radius}"
            f"[Self Test]\nShared_Secret={SELFTEST_SECRET}\n"
            f"Path_To_Lock_File={self.base / 'radcheck.pid'}\n"
            f"[Log]\nLog_To=File\nLog_Dest={self.log_file}\nLevel=DEBUG\n" + extra)
        self.config.chmod(0o600)
        self.proc: subprocess.Popen[bytes] | None = None
        self.provision = provision

    def vigil(self, *args: str, check: bool = True, input: str | None = None
              ) -> subprocess.CompletedProcess[str]:
        env = dict(os.environ, VIGIL_CONF=str(self.config))
        return subprocess.run([sys.executable, "-m", "vigil.cli", *args], env=env, text=True,
                              capture_output=True, check=check, input=input, cwd=ROOT,
                              timeout=120)

    def prepare(self) -> BillingSandbox:
        # In-process: the same code `vigil db upgrade` / `vigil provision`
        # run, without paying for two interpreter starts per test.
        from billing import schema
        from billing.db import engine_for_url
        from billing.provision import apply_document, load_document

        engine = engine_for_url(self.db_url)
        try:
            schema.upgrade(engine)
            if self.provision is not None:
                apply_document(engine, load_document(self.provision))
        finally:
            engine.dispose()
        return self

    def start(self, timeout: float = 20.0) -> BillingSandbox:
        env = dict(os.environ, VIGIL_CONF=str(self.config))
        with open(self.base / "radiusd.stderr", "ab") as err:
            self.proc = subprocess.Popen([sys.executable, "-m", "vigil.cli", "radiusd"],
                                         env=env, cwd=ROOT, stdout=subprocess.DEVNULL,
                                         stderr=err, preexec_fn=die_with_parent)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError("vigil radiusd exited: " +
                                   (self.base / "radiusd.stderr").read_text()[-2000:])
            if self.selftest(timeout=0.3):
                return self
        raise TimeoutError("vigil radiusd did not answer the self-test")

    def client(self, secret: str, timeout: float = 1.0, retries: int = 1) -> RadiusClient:
        """The engine's RADIUS client; ``retries`` is the number of tries (pyrad's sense)."""
        from billing.server import load_dictionary

        return RadiusClient("127.0.0.1", self.auth_port, self.acct_port, secret.encode(),
                            load_dictionary(), Timeouts(per_try=timeout, tries=max(1, retries)))

    def selftest(self, timeout: float = 1.0) -> bool:
        c = self.client(SELFTEST_SECRET, timeout=timeout)
        req = c.auth_packet()
        req["User-Name"] = "127.0.0.1"
        req["NAS-IP-Address"] = "127.0.0.1"
        req["User-Password"] = req.PwCrypt("cisco")
        try:
            return c.send(req).code == rp.AccessAccept
        except RadiusError:
            return False

    def signal(self, sig: int) -> None:
        assert self.proc is not None
        self.proc.send_signal(sig)

    def stop(self) -> int | None:
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self.proc.returncode

    def log_text(self) -> str:
        try:
            return self.log_file.read_text()
        except FileNotFoundError:
            return ""

    def __enter__(self) -> BillingSandbox:
        return self.prepare().start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


@contextmanager
def in_process_server(box: BillingSandbox) -> Iterator[tuple[RadiusServer, socket.socket]]:
    """The engine of a prepared sandbox built in this process, as `vigil
    radiusd` builds it (nothing started: the test drives it), and a UDP
    socket on loopback to send from and read the replies on; both closed at
    the end."""
    import socket

    from billing.app import build_server
    from vigil.config import load

    srv = build_server(load(box.config))
    sink = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sink.bind(("127.0.0.1", 0))
    try:
        yield srv, sink
    finally:
        srv.auth_sock.close()
        srv.acct_sock.close()
        sink.close()
