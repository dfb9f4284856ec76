"""Real peers for the monitor's tests and benchmark: a central Nagios and an NSCA daemon.

:class:`CentralNagios` generates a configuration with
:func:`monitor.nagios_config.generate` into a temporary folder (Nagios runs
as the current user, its command file, query socket, status file and spool
all inside that folder) and runs Debian's ``nagios4`` on it in the
foreground. :class:`DebianNSCA` is Debian's ``nsca`` daemon writing into
that Nagios' command file. Loopback only, private ports.
"""

from __future__ import annotations

import contextlib
import grp
import os
import pwd
import signal
import socket
import stat
import subprocess
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from monitor import nagios_status
from monitor.nagios_config import NagiosSettings, generate
from monitor.scheduler import CheckLike
from monitor.settings import Timing
from monitor.sites import Site
from vigil.testing.ports import free_port
from vigil.testing.reaper import die_with_parent
from vigil.testing.wait import poll

NAGIOS = "/usr/sbin/nagios4"
NSCA = "/usr/sbin/nsca"

# Seconds instead of minutes: service 10 s, host 7 s, site 4 s, checked every second.
FAST = Timing(service_sec=10, host_sec=7, site_sec=4, check_interval_sec=1, latency_sec=0,
              interval_length_sec=1, reaper_sec=1, notification_interval=0)


@dataclass(frozen=True)
class Spec:
    """A check as the checks file gives it (what the scheduler needs)."""

    name: str
    service_description: str
    command: tuple[str, ...]
    interval_sec: float = 60
    timeout_sec: float = 10
    subsystem: str = "system"
    problem: str = ""


def _me() -> tuple[str, str]:
    return pwd.getpwuid(os.getuid()).pw_name, grp.getgrgid(os.getgid()).gr_name


class CentralNagios:
    def __init__(self, workdir: Path, sites: Sequence[Site], checks: Sequence[CheckLike], *,
                 notify_command: str, on_call: Sequence[str] = ("oncall@example.com",),
                 timing: Timing = FAST, runbook_url: str = "file:///vigil/docs",
                 binary: str = NAGIOS, vigil_command: Sequence[str] = (),
                 graph_url: str = "", perfdata_interval_sec: int = 0,
                 perfdata_store: Sequence[str] = ()) -> None:
        user, group = _me()
        self.dir = Path(workdir)
        self.binary = binary
        self.settings = NagiosSettings(out_dir=self.dir, timing=timing, on_call=list(on_call),
                                       notify_command=notify_command, runbook_url=runbook_url,
                                       nagios_user=user, nagios_group=group,
                                       vigil_command=vigil_command, graph_url=graph_url,
                                       perfdata_interval_sec=perfdata_interval_sec,
                                       perfdata_store=perfdata_store)
        self.generated = generate(sites, checks, self.settings)
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def command_file(self) -> Path:
        return self.settings.cmd_file

    @property
    def status_file(self) -> Path:
        return self.settings.var / "status.dat"

    @property
    def log_file(self) -> Path:
        return self.settings.var / "nagios.log"

    def verify(self) -> subprocess.CompletedProcess[str]:
        return subprocess.run([self.binary, "-v", str(self.generated.main_cfg)],
                              capture_output=True, text=True, timeout=60, check=False)

    def start(self, timeout: float = 20.0) -> CentralNagios:
        # in the foreground (no -d): a daemonising fork would shed the parent-death signal
        self.proc = subprocess.Popen([self.binary, str(self.generated.main_cfg)],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                     start_new_session=True, preexec_fn=die_with_parent)

        def ready() -> bool:
            if self.proc is not None and self.proc.poll() is not None:
                raise RuntimeError(f"nagios4 exited with {self.proc.returncode}; see "
                                   f"{self.log_file}")
            try:
                fifo = stat.S_ISFIFO(self.command_file.stat().st_mode)
            except FileNotFoundError:
                return False
            return fifo and self.status_file.exists()

        if not poll(ready, timeout):
            self.stop()
            raise TimeoutError(f"nagios4 did not come up within {timeout} s")
        return self

    def status(self) -> nagios_status.Status:
        return nagios_status.read(self.status_file)

    def wait_status(self, cond: Callable[[nagios_status.Status], bool],
                    timeout: float) -> nagios_status.Status:
        box: list[nagios_status.Status] = [nagios_status.Status()]

        def check() -> bool:
            box[0] = self.status()
            return cond(box[0])

        if not poll(check, timeout, 0.2):
            raise AssertionError(f"Nagios status never matched within {timeout} s; "
                                 f"log tail:\n{self.log_tail()}")
        return box[0]

    def log_tail(self, n: int = 40) -> str:
        try:
            return "\n".join(self.log_file.read_text(errors="replace").splitlines()[-n:])
        except FileNotFoundError:
            return "(no log)"

    def stop(self) -> None:
        if self.proc is None:
            return
        with contextlib.suppress(ProcessLookupError):
            self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(15)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(5)
        # Nagios' workers are its children, in its session.
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc = None

    def __enter__(self) -> CentralNagios:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


class DebianNSCA:
    """Debian's ``nsca`` daemon, writing results into a Nagios command file."""

    def __init__(self, workdir: Path, command_file: Path, *, password: str = "s3cret",
                 method: int = 1, port: int | None = None) -> None:
        user, group = _me()
        self.dir = Path(workdir)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.port = port or free_port()
        self.password = password
        self.method = method
        self.cfg = self.dir / "nsca.cfg"
        self.cfg.write_text(
            f"pid_file={self.dir}/nsca.pid\nserver_port={self.port}\n"
            f"server_address=127.0.0.1\nnsca_user={user}\nnsca_group={group}\ndebug=0\n"
            f"command_file={command_file}\nalternate_dump_file={self.dir}/dump\n"
            f"aggregate_writes=0\nappend_to_file=1\nmax_packet_age=30\n"
            f"password={password}\ndecryption_method={method}\n")
        self.cfg.chmod(0o600)
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> DebianNSCA:
        self.proc = subprocess.Popen([NSCA, "-f", "-c", str(self.cfg), "--single"],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                     preexec_fn=die_with_parent)

        def listening() -> bool:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                    return True
            except OSError:
                return False

        if not poll(listening, 10, 0.05):
            self.stop()
            raise TimeoutError(f"nsca did not listen on {self.port}")
        return self

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
            self.proc = None

    def __enter__(self) -> DebianNSCA:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def write_conf(path: Path, sections: dict[str, dict[str, object]]) -> Path:
    """A vigil.conf for a test server (mode 0600: it holds the NSCA password)."""
    text = ""
    for section, options in sections.items():
        text += f"[{section}]\n" + "".join(f"{k}={v}\n" for k, v in options.items()) + "\n"
    path.write_text(text)
    path.chmod(0o600)
    return path


CHROMIUM = "/usr/bin/chromium"
CHROMIUM_FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                  "--no-first-run", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync")


def chromium(workdir: Path, url: str, *, screenshot: Path | None = None,
             timeout: float = 90.0) -> str:
    """Load ``url`` in Debian's headless chromium (a fresh profile each time) and return
    the DOM after scripts ran, or write a screenshot. Credentials may be in the URL."""
    profile = workdir / f"chromium-profile-{time.monotonic_ns()}"
    profile.mkdir(parents=True)
    what = [f"--screenshot={screenshot}", "--window-size=1280,1600"] if screenshot \
        else ["--dump-dom"]
    proc = subprocess.run([CHROMIUM, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", *what, url],
                          capture_output=True, text=True, timeout=timeout, check=False,
                          start_new_session=True)
    if proc.returncode != 0:
        raise RuntimeError(f"chromium {url}: exit {proc.returncode}: {proc.stderr[-2000:]}")
    return proc.stdout


class Dashboard:
    """``vigil -c CONF monitor web``: lighttpd serving the Nagios CGIs, runbooks and graphs."""

    def __init__(self, vigil: str, conf: Path, port: int, log: Path) -> None:
        self.argv = [vigil, "-c", str(conf), "monitor", "web"]
        self.port = port
        self.log = log
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 30.0) -> Dashboard:
        with open(self.log, "wb") as fh:
            self.proc = subprocess.Popen(self.argv, stdout=fh, stderr=subprocess.STDOUT,
                                         start_new_session=True, preexec_fn=die_with_parent)

        def listening() -> bool:
            if self.proc is not None and self.proc.poll() is not None:
                raise RuntimeError(f"vigil monitor web exited: {self.log.read_text()}")
            with socket.socket() as s:
                return s.connect_ex(("127.0.0.1", self.port)) == 0

        if not poll(listening, timeout):
            self.stop()
            raise TimeoutError(f"the dashboard did not listen within {timeout} s")
        return self

    def stop(self) -> None:
        if self.proc is None:
            return
        with contextlib.suppress(ProcessLookupError):
            self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(5)
        self.proc = None

    def __enter__(self) -> Dashboard:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
