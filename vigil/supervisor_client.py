"""Talking to supervisord over its XML-RPC interface on the unix socket.

Used by radcheck (restart the RADIUS program), ``vigil status`` and, later,
the site watchdog. Every call has a timeout: supervisord's own transport has
none, and a monitoring loop must not hang on a wedged supervisord.
Errors become :class:`SupervisorError` at this one boundary.
"""

from __future__ import annotations

import contextlib
import http.client
import logging
import socket
import xmlrpc.client
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from supervisor.xmlrpc import SupervisorTransport

from vigil.config import Config

log = logging.getLogger(__name__)


class SupervisorError(Exception):
    """supervisord unreachable, or it refused what was asked."""


class SupervisorUnavailable(SupervisorError):
    """No supervisord answers on the socket."""


class _UnixHTTPConnection(http.client.HTTPConnection):
    def __init__(self, socket_file: str, timeout: float) -> None:
        # "localhost" only fills the Host header; the socket path is what counts.
        super().__init__("localhost", timeout=timeout)
        self.socket_file = socket_file

    def connect(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        try:
            sock.connect(self.socket_file)
        except OSError:
            sock.close()
            raise
        self.sock = sock


class _TimeoutTransport(SupervisorTransport):
    def __init__(self, socket_file: str, timeout: float) -> None:
        super().__init__(None, None, serverurl="unix://" + socket_file)
        self._get_connection = lambda: _UnixHTTPConnection(socket_file, timeout)


@dataclass(frozen=True)
class ProgramState:
    name: str
    group: str
    state: str
    pid: int
    uptime_sec: int | None
    description: str
    exitstatus: int
    spawnerr: str
    stdout_logfile: str

    @classmethod
    def from_info(cls, info: dict[str, Any]) -> ProgramState:
        running = info.get("statename") == "RUNNING" and info.get("start")
        return cls(
            name=info["name"], group=info.get("group", info["name"]),
            state=info.get("statename", "UNKNOWN"), pid=int(info.get("pid") or 0),
            uptime_sec=int(info["now"] - info["start"]) if running else None,
            description=info.get("description", ""), exitstatus=int(info.get("exitstatus", 0)),
            spawnerr=info.get("spawnerr", ""), stdout_logfile=info.get("stdout_logfile", ""))

    @property
    def full_name(self) -> str:
        return self.name if self.group == self.name else f"{self.group}:{self.name}"


class Supervisor:
    """A small client: ``Supervisor(socket_path, timeout).restart("radiusd")``."""

    def __init__(self, socket_file: str | Path, timeout: float = 30.0) -> None:
        self.socket_file = str(socket_file)
        self.timeout = timeout

    def _call(self, method: str, *args: Any) -> Any:
        transport = _TimeoutTransport(self.socket_file, self.timeout)
        proxy = xmlrpc.client.ServerProxy("http://localhost", transport=transport)
        try:
            return getattr(proxy, method)(*args)
        except xmlrpc.client.Fault as exc:
            raise SupervisorError(f"supervisord refused {method}{args!r}: "
                                  f"{exc.faultString}") from exc
        except (FileNotFoundError, ConnectionRefusedError) as exc:
            raise SupervisorUnavailable(
                f"no supervisord on {self.socket_file}: {exc.strerror}") from exc
        except TimeoutError as exc:
            raise SupervisorError(f"supervisord did not answer {method} within "
                                  f"{self.timeout:g} s") from exc
        except (OSError, http.client.HTTPException, xmlrpc.client.ProtocolError) as exc:
            raise SupervisorUnavailable(f"supervisord on {self.socket_file}: {exc}") from exc
        finally:
            transport.close()

    def state(self) -> str:
        return str(self._call("supervisor.getState")["statename"])

    def programs(self) -> list[ProgramState]:
        return [ProgramState.from_info(i) for i in self._call("supervisor.getAllProcessInfo")]

    def program(self, name: str) -> ProgramState:
        return ProgramState.from_info(self._call("supervisor.getProcessInfo", name))

    def start(self, name: str) -> None:
        self._call("supervisor.startProcess", name, True)

    def stop(self, name: str) -> None:
        self._call("supervisor.stopProcess", name, True)

    def signal(self, name: str, sig: str) -> None:
        self._call("supervisor.signalProcess", name, sig)

    def restart(self, name: str) -> str:
        """Stop (if running) and start ``name``; what was done, for the log and the alert.

        A program stopped by an operator (STOPPED) is left alone: restarting
        it would fight the operator. A process frozen by SIGSTOP (a debugger,
        a paused VM) cannot act on SIGTERM, so it gets SIGCONT first and can
        shut down cleanly instead of waiting ``stopwaitsecs`` for a SIGKILL.
        """
        before = self.program(name)
        if before.state == "STOPPED":
            raise SupervisorError(f"program {name} was stopped by an operator; not restarting it")
        if before.state in ("RUNNING", "STARTING"):
            with contextlib.suppress(SupervisorError):
                self.signal(name, "CONT")
        if before.state in ("RUNNING", "STARTING", "STOPPING", "BACKOFF"):
            try:
                self.stop(name)
            except SupervisorError as exc:
                # NOT_RUNNING: it died meanwhile; starting it is all that is left.
                if "NOT_RUNNING" not in str(exc):
                    raise
        self.start(name)
        after = self.program(name)
        return f"{name} was {before.state} (pid {before.pid}), now {after.state} (pid {after.pid})"


def supervisor_socket(cfg: Config) -> Path:
    """``[Supervisor] Socket_File``, or supervisor.sock in ``[Site] State_Dir``."""
    return cfg.state_file("Supervisor", "Socket_File", "supervisor.sock")
