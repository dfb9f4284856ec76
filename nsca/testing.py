"""Real peers for tests and benchmarks: the Debian ``nsca`` daemon, Vigil's server.

Loopback only, private ports, temporary folders.
"""

from __future__ import annotations

import os
import socket
import subprocess
import threading
import time
from pathlib import Path

from nsca.server import Server, ServerOptions, Sink
from vigil.testing.binaries import need
from vigil.testing.ports import free_port
from vigil.testing.reaper import die_with_parent


def wait_port(port: int, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.02)
    raise TimeoutError(f"nothing listens on 127.0.0.1:{port}")


def wait_lines(path: Path, n: int, timeout: float = 20.0) -> list[str]:
    deadline = time.monotonic() + timeout
    lines: list[str] = []
    while time.monotonic() < deadline:
        if path.exists():
            lines = path.read_text().splitlines()
            if len(lines) >= n:
                return lines
        time.sleep(0.05)
    return lines


def _daemon(argv: list[str], port: int) -> subprocess.Popen[bytes]:
    """A Debian daemon in the foreground, quiet, ended with this process; once it listens."""
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            preexec_fn=die_with_parent)
    wait_port(port)
    return proc


def _end(proc: subprocess.Popen[bytes] | None) -> None:
    """SIGTERM, and wait for it to go."""
    if proc is not None:
        proc.terminate()
        proc.wait(10)


class RealNSCA:
    """The Debian ``nsca`` daemon on a private port, writing to a regular file."""

    def __init__(self, workdir: Path, *, method: int = 1, password: str = "secret",
                 max_packet_age: int = 30, port: int | None = None) -> None:
        self.dir = workdir
        self.dir.mkdir(parents=True, exist_ok=True)
        self.port = port or free_port()
        self.command_file = self.dir / "nagios.cmd"
        self.command_file.touch()
        self.cfg = self.dir / "nsca.cfg"
        user = subprocess.run(["id", "-un"], capture_output=True, text=True).stdout.strip()
        group = subprocess.run(["id", "-gn"], capture_output=True, text=True).stdout.strip()
        # surrogateescape: a password given as bytes that are not UTF-8 is written as those bytes
        self.cfg.write_bytes((
            f"pid_file={self.dir}/nsca.pid\nserver_port={self.port}\n"
            f"server_address=127.0.0.1\nnsca_user={user}\nnsca_group={group}\ndebug=0\n"
            f"command_file={self.command_file}\nalternate_dump_file={self.dir}/dump\n"
            f"aggregate_writes=0\nappend_to_file=1\nmax_packet_age={max_packet_age}\n"
            f"password={password}\ndecryption_method={method}\n"
        ).encode("utf-8", "surrogateescape"))
        self.cfg.chmod(0o600)
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> RealNSCA:
        self.proc = _daemon([need("nsca", "/usr/sbin/nsca"), "-f", "-c", str(self.cfg),
                             "--single"], self.port)
        return self

    def stop(self) -> None:
        _end(self.proc)
        self.proc = None

    def lines(self) -> list[str]:
        return self.command_file.read_text().splitlines()


class VigilServer:
    def __init__(self, opts: ServerOptions, sink: Sink) -> None:
        self.server = Server(opts, sink)
        self.port = self.server.port
        self.thread = self.server.start()

    def stop(self) -> None:
        self.server.stop()
        self.thread.join(10)


class RealNSCANG:
    """The Debian ``nsca-ng`` server on a private port; a thread drains its FIFO."""

    def __init__(self, workdir: Path, *, identity: str = "vigil", password: str = "ng-secret",
                 commands: str = ".*", port: int | None = None) -> None:
        self.dir = workdir
        self.dir.mkdir(parents=True, exist_ok=True)
        self.port = port or free_port()
        self.fifo = self.dir / "nagios.cmd"
        self.out = self.dir / "received.cmd"
        self.out.touch()
        self.cfg = self.dir / "nsca-ng.cfg"
        self.cfg.write_text(
            f'command_file = "{self.fifo}"\nlisten = "127.0.0.1:{self.port}"\n'
            f'pid_file = "{self.dir}/nsca-ng.pid"\nlog_level = 3\n'
            f'authorize "{identity}" {{\n\tpassword = "{password}"\n'
            f'\tcommands = "{commands}"\n}}\n')
        self.cfg.chmod(0o600)
        self.proc: subprocess.Popen[bytes] | None = None
        self._drain: threading.Thread | None = None
        self._stop = threading.Event()

    def _drainer(self) -> None:
        while not self._stop.is_set():
            try:
                fd = os.open(self.fifo, os.O_RDONLY | os.O_NONBLOCK)
            except FileNotFoundError:
                time.sleep(0.05)
                continue
            with open(fd, "rb", buffering=0) as fh, open(self.out, "ab") as out:
                while not self._stop.is_set():
                    chunk = fh.read(65536)
                    if chunk:
                        out.write(chunk)
                        out.flush()
                    else:
                        time.sleep(0.01)

    def start(self) -> RealNSCANG:
        if not self.fifo.exists():
            os.mkfifo(self.fifo)
        self._stop.clear()
        self._drain = threading.Thread(target=self._drainer, daemon=True)
        self._drain.start()
        self.proc = _daemon([need("nsca-ng", "/usr/sbin/nsca-ng"), "-F", "-c", str(self.cfg)],
                            self.port)
        return self

    def stop(self) -> None:
        _end(self.proc)
        self.proc = None
        self._stop.set()
        if self._drain is not None:
            self._drain.join(5)

    def lines(self) -> list[str]:
        return self.out.read_text().splitlines()


def run_send_nsca(port: int, data: str, cfg_dir: Path, *, method: int, password: str,
                  legacy: bool = False, program: str = "send_nsca") -> subprocess.CompletedProcess:
    cfg = cfg_dir / f"send_nsca_{method}.cfg"
    cfg.write_text(f"password={password}\nencryption_method={method}\n")
    os.chmod(cfg, 0o600)
    cmd = [program, "-H", "127.0.0.1", "-p", str(port), "-c", str(cfg)]
    if legacy:
        cmd.append("--legacy-2-7-mode")
    return subprocess.run(cmd, input=data.encode(), capture_output=True, timeout=60)


