"""A long-lived worker that runs Vigil's own plugins without a Python start per check.

Starting Python and importing a plugin costs about 100 ms of CPU; the C
Monitoring Plugins cost about 5 ms. The zygote is one interpreter, started
once by the scheduler, that imports every plugin module up front and then
forks one child per check:

- **isolation**: each check runs in its own process (own session, so its
  process group can be killed whole); a plugin that crashes, leaks, hangs or
  calls ``os._exit`` ends only its child. The zygote itself runs no plugin
  code after the imports.
- **hard timeout**: the scheduler reads the child's stdout/stderr (pipes it
  created and handed over with ``SCM_RIGHTS``) against its own deadline and
  kills the child's process group itself (:mod:`monitor.runner`), exactly as
  for a subprocess; the zygote only reports the child's pid and, once reaped,
  its exit status.
- **no stale state**: a child starts from the zygote's state after the
  imports, never from a previous check's; the configuration is read by each
  child, so an edit of ``vigil.conf`` is seen at the next check.

If the zygote dies, the checks it was running end UNKNOWN ("worker died") and
the next check starts a new zygote; :mod:`monitor.runner` falls back to a
plain subprocess while it cannot start one.

Wire (a ``SOCK_SEQPACKET`` socketpair, one JSON object per message)::

    scheduler -> zygote   {"id": 7, "argv": ["load", "-w", "5"], "env": {...}, "cwd": "/"}
                          + two fds (stdout, stderr write ends)
    zygote -> scheduler   {"ready": true}              (once, when the imports are done)
    zygote -> scheduler   {"id": 7, "pid": 4242}       or {"id": 7, "error": "fork: ..."}
    zygote -> scheduler   {"id": 7, "exit": 0, "cpu": 0.006}  (exit < 0: killed by that
                                                               signal; cpu: the child's seconds)
"""

from __future__ import annotations

import contextlib
import gc
import importlib
import json
import logging
import os
import select
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

_MAX_MESSAGE = 1 << 20
_SPAWN_WAIT_SEC = 10.0
BUILTIN_PROGRAMS = ("vigil-check",)
PLUGIN_PREFIX = "check_vigil_"
# The zygote puts the caller's PYTHONPATH back once started, so that its
# children get exactly the scheduler's environment without it being resent.
_ORIGINAL_PYTHONPATH = "VIGIL_ZYGOTE_ORIGINAL_PYTHONPATH"


class ZygoteError(Exception):
    """The zygote cannot run a check now (not started, died, refused)."""


def plugin_argv(argv: Sequence[str]) -> list[str] | None:
    """``[plugin, *args]`` when ``argv`` runs one of Vigil's plugins, else None.

    ``vigil-check NAME ...`` and ``check_vigil_NAME ...`` (the installed
    Monitoring Plugins names) both qualify; anything else runs as a subprocess.
    """
    if not argv:
        return None
    prog = Path(argv[0]).name
    if prog in BUILTIN_PROGRAMS and len(argv) > 1 and not argv[1].startswith("-"):
        return list(argv[1:])
    if prog.startswith(PLUGIN_PREFIX) and len(prog) > len(PLUGIN_PREFIX):
        return [prog[len(PLUGIN_PREFIX):], *argv[1:]]
    return None


# ------------------------------------------------------------ scheduler side
class ZygoteChild:
    """One check running in a zygote child; quacks like the ``Popen`` the runner reads."""

    def __init__(self, zygote: Zygote, ident: int, stdout: int, stderr: int) -> None:
        self._zygote = zygote
        self.ident = ident
        self.stdout = os.fdopen(stdout, "rb", buffering=0)
        self.stderr = os.fdopen(stderr, "rb", buffering=0)
        self.pid = 0
        self.returncode: int | None = None
        self.cpu_sec: float | None = None
        self.error = ""
        self._started = threading.Event()
        self._ended = threading.Event()

    def _set_pid(self, pid: int) -> None:
        self.pid = pid
        self._started.set()

    def _set_exit(self, code: int | None, error: str = "") -> None:
        if code is None:
            # The zygote died under us: nobody will reap the child; report it as killed.
            code = -signal.SIGKILL
            self.error = error or "vigil plugin worker died"
        self.returncode = code
        self._started.set()
        self._ended.set()

    def wait(self, timeout: float | None = None) -> int:
        if not self._ended.wait(timeout):
            raise subprocess.TimeoutExpired(f"zygote child {self.pid}", timeout or 0.0)
        assert self.returncode is not None
        return self.returncode


class Zygote:
    """The scheduler's handle on the zygote process; thread-safe, started on first use."""

    def __init__(self, python: str = sys.executable, env: Mapping[str, str] | None = None,
                 preload: bool = True) -> None:
        self.python = python
        self.env = dict(env) if env is not None else None
        self.preload = preload
        self._lock = threading.Lock()
        self._sock: socket.socket | None = None
        self._proc: subprocess.Popen[bytes] | None = None
        self._children: dict[int, ZygoteChild] = {}
        self._next = 0
        self._closed = False
        self._started_env: dict[str, str] | None = None
        self._ready = threading.Event()
        self.starts = 0

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    def _start(self) -> socket.socket:
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        argv = [self.python, "-m", "monitor.zygote", str(theirs.fileno())]
        if not self.preload:
            argv.append("--no-preload")
        env = dict(self.env if self.env is not None else os.environ)
        self._started_env = dict(env)
        # The zygote must import this very Vigil, whatever the caller's cwd.
        root = str(Path(__file__).resolve().parent.parent)
        env[_ORIGINAL_PYTHONPATH] = env.get("PYTHONPATH", "")
        env["PYTHONPATH"] = os.pathsep.join(p for p in (root, env.get("PYTHONPATH", "")) if p)
        try:
            self._proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, env=env,
                                          pass_fds=[theirs.fileno()], close_fds=True)
        except OSError as exc:
            ours.close()
            raise ZygoteError(f"cannot start the plugin worker: {exc}") from exc
        finally:
            theirs.close()
        self._sock = ours
        self._ready.clear()
        self.starts += 1
        reader = threading.Thread(target=self._read, args=(ours, self._proc),
                                  name="zygote-reader", daemon=True)
        reader.start()
        log.info("monitor: plugin worker (zygote) started, pid %d", self._proc.pid)
        return ours

    def start(self, timeout: float = 30.0) -> bool:
        """Start the zygote now and wait until it has imported the plugins (True), so the
        first pass does not wait for that; False if it is not ready within ``timeout``
        (checks then queue for it, or run as subprocesses if it cannot start)."""
        with self._lock:
            if self._closed:
                raise ZygoteError("the plugin worker is closed")
            sock = self._sock if self._sock is not None else self._start()
        deadline = time.monotonic() + timeout
        while not self._ready.wait(0.1):
            if self._sock is not sock:
                raise ZygoteError("the plugin worker ended while starting")
            if time.monotonic() > deadline:
                return False
        return True

    def spawn(self, argv: Sequence[str], env: Mapping[str, str] | None = None,
              cwd: str | None = None) -> ZygoteChild:
        """Fork a child running ``vigil-check argv``; returns once its pid is known."""
        out_r, out_w = os.pipe()
        err_r, err_w = os.pipe()
        request: dict[str, Any] = {"argv": list(argv), "cwd": cwd or os.getcwd()}
        wanted = dict(env if env is not None else os.environ)
        if wanted != self._started_env:
            request["env"] = wanted  # else the child keeps the zygote's own (the usual case)
        child: ZygoteChild | None = None
        try:
            with self._lock:
                if self._closed:
                    raise ZygoteError("the plugin worker is closed")
                sock = self._sock if self._sock is not None else self._start()
                self._next += 1
                child = ZygoteChild(self, self._next, out_r, err_r)
                self._children[child.ident] = child
                request["id"] = child.ident
                try:
                    socket.send_fds(sock, [json.dumps(request).encode()], [out_w, err_w])
                except OSError as exc:
                    self._children.pop(child.ident, None)
                    self._drop(sock)
                    raise ZygoteError(f"the plugin worker is gone: {exc}") from exc
        except BaseException:
            if child is not None:  # the file objects own the read ends now
                child.stdout.close()
                child.stderr.close()
            else:
                for fd in (out_r, err_r):
                    with contextlib.suppress(OSError):
                        os.close(fd)
            raise
        finally:
            os.close(out_w)
            os.close(err_w)
        if not child._started.wait(_SPAWN_WAIT_SEC) or not child.pid:
            child.stdout.close()
            child.stderr.close()
            raise ZygoteError(child.error or "the plugin worker did not start the check")
        return child

    def _drop(self, sock: socket.socket) -> None:
        """Forget a dead zygote (under the lock); the next spawn starts another."""
        if self._sock is sock:
            self._sock = None
            with contextlib.suppress(OSError):
                sock.close()

    def _read(self, sock: socket.socket, proc: subprocess.Popen[bytes]) -> None:
        while True:
            try:
                data = sock.recv(_MAX_MESSAGE)
            except OSError:
                data = b""
            if not data:
                break
            try:
                msg = json.loads(data)
                if isinstance(msg, dict) and msg.get("ready"):
                    self._ready.set()
                    continue
                ident = int(msg["id"])
            except (ValueError, KeyError, TypeError):
                log.error("monitor: plugin worker sent garbage: %r", data[:200])
                continue
            with self._lock:
                child = self._children.get(ident)
                if child is not None and ("exit" in msg or "error" in msg):
                    del self._children[ident]
            if child is None:
                continue
            if "pid" in msg:
                child._set_pid(int(msg["pid"]))
            elif "exit" in msg:
                with contextlib.suppress(TypeError, ValueError):
                    child.cpu_sec = float(msg.get("cpu"))
                child._set_exit(int(msg["exit"]))
            else:
                child._set_exit(None, f"plugin worker: {msg.get('error')}")
        # EOF: the zygote ended (closed by us, or died). Fail whatever it still held.
        with self._lock:
            self._drop(sock)
            orphans = list(self._children.values())
            self._children.clear()
        for child in orphans:
            # Nobody can report on them any more: end them, so their pipes close now.
            if child.pid:
                with contextlib.suppress(OSError):
                    os.killpg(child.pid, signal.SIGKILL)
            child._set_exit(None)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=5)
        if not self._closed:
            log.error("monitor: plugin worker (zygote) pid %d ended (exit %s); %d check(s) "
                      "lost, the next check starts a new one", proc.pid, proc.returncode,
                      len(orphans))

    def cpu_seconds(self) -> float:
        """CPU of the zygote and of the children it reaped (Linux /proc), 0 if not running."""
        proc = self._proc
        if proc is None or proc.poll() is not None:
            return 0.0
        try:
            stat = Path(f"/proc/{proc.pid}/stat").read_text()
        except OSError:
            return 0.0
        fields = stat.rsplit(")", 1)[1].split()
        ticks = sum(int(f) for f in fields[11:15])  # utime stime cutime cstime
        return ticks / os.sysconf("SC_CLK_TCK")

    def close(self) -> None:
        """End the zygote (it kills the checks it still runs) and wait for it."""
        with self._lock:
            self._closed = True
            sock, proc = self._sock, self._proc
            if sock is not None:
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
        if proc is not None:
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


# -------------------------------------------------------------- zygote side
# What plugins import inside their probe (to keep a command-line run fast); a
# child would import them again at every check.
_LAZY_IMPORTS = ("vigil.statefile", "vigil.alerts", "vigil.supervisor_client",
                 "vigil.radius_client", "nsca.cursor", "nsca.cli", "pymysql", "sqlite3",
                 "redundancy.replication.errors", "redundancy.replication.server",
                 "redundancy.replication.status", "xmlrpc.client", "http.client")


def _preload() -> None:
    """Import what every check needs, once; a module that fails is left to its child."""
    from checks import PLUGINS

    for name in ("checks.cli", "checks.plugin", "vigil.config",
                 *(f"checks.{p}" for p in PLUGINS), *_LAZY_IMPORTS):
        try:
            importlib.import_module(name)
        except Exception as exc:  # the child reports it as the plugin's UNKNOWN line
            print(f"vigil zygote: cannot preload {name}: {exc}", file=sys.stderr)
    # the registry of every option (it imports the rooms' settings), built once
    # here, so a child's config load imports nothing more
    try:
        from vigil.config import default_registry

        default_registry()
    except Exception as exc:
        print(f"vigil zygote: cannot preload the option registry: {exc}", file=sys.stderr)
    global _prctl
    _warm_up(PLUGINS)
    with contextlib.suppress(Exception):
        import ctypes

        # looked up here, used in each child (never on the zygote itself: its parent
        # is a scheduler thread, and PDEATHSIG follows the thread, not the process)
        _prctl = ctypes.CDLL(None, use_errno=True).prctl
    # Everything imported so far lives as long as the zygote: keep the collector
    # off it, so a child's first collection does not touch (copy) every page.
    gc.collect()
    gc.freeze()


def _warm_up(plugins: Sequence[str]) -> None:
    """Fill the caches every check would otherwise fill for itself (argparse's and the
    re module's compiled patterns, nagiosplugin's pipeline, the option registry), by
    parsing each plugin's default arguments and judging one harmless local reading.
    Nothing is printed and no timer or thread is started."""
    from checks.cli import plugin_class
    from checks.plugin import Context, judge, parse_arguments

    for name in plugins:
        with contextlib.suppress(Exception, SystemExit):
            cls = plugin_class(name)
            parse_arguments(cls(), [])
    with contextlib.suppress(Exception):
        plugin = plugin_class("load")()
        ctx = Context(plugin, parse_arguments(plugin, []))
        judge(plugin, ctx)
        ctx.config()  # parsed once here; a child re-reads it only if the file changed
    with contextlib.suppress(Exception):
        # the RADIUS plugins' parsed dictionary, kept by their module
        importlib.import_module("checks.radius").dictionary()


def _child(sock: socket.socket, wake: tuple[int, int], request: dict[str, Any],
           fds: list[int], zygote_pid: int) -> None:
    """In the forked child: become the plugin process, run it, never return."""
    code = 3
    try:
        _die_with_parent(zygote_pid)
        os.setsid()
        for sig in (signal.SIGCHLD, signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            signal.signal(sig, signal.SIG_DFL)
        signal.set_wakeup_fd(-1)
        sock.close()
        for fd in wake:
            os.close(fd)
        devnull = os.open(os.devnull, os.O_RDONLY)
        os.dup2(devnull, 0)
        os.dup2(fds[0], 1)
        os.dup2(fds[1], 2)
        for fd in (devnull, *fds):
            os.close(fd)
        if "env" in request:
            os.environ.clear()
            os.environ.update(request["env"] or {})

        with contextlib.suppress(OSError):
            os.chdir(request.get("cwd") or "/")
        logging.getLogger().handlers.clear()
        argv = [str(a) for a in request["argv"]]
        sys.argv = ["vigil-check", *argv]
        from checks.cli import main

        code = int(main(argv))
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else 3
    except BaseException as exc:  # the plugin's guard failed too: say so on stderr
        with contextlib.suppress(Exception):
            os.write(2, f"vigil zygote child: {type(exc).__name__}: {exc}\n".encode())
        code = 3
    finally:
        with contextlib.suppress(Exception):
            sys.stdout.flush()
            sys.stderr.flush()
        os._exit(code)


_prctl: Any = None  # libc's prctl, looked up once in the zygote


def _die_with_parent(zygote_pid: int) -> None:
    """A check must not outlive a killed zygote (nobody would report or reap it):
    Linux's PR_SET_PDEATHSIG kills the child when the zygote goes."""
    global _prctl
    with contextlib.suppress(Exception):
        if _prctl is None:
            import ctypes

            _prctl = ctypes.CDLL(None, use_errno=True).prctl
        _prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    if os.getppid() != zygote_pid:  # it died before the prctl took effect
        os._exit(3)


def _send(sock: socket.socket, msg: dict[str, Any]) -> None:
    with contextlib.suppress(OSError):
        sock.send(json.dumps(msg).encode())


def serve(sock: socket.socket) -> int:
    """The zygote's loop: fork on request, report pids and exit codes, until EOF."""
    children: dict[int, int] = {}  # pid -> request id
    zygote_pid = os.getpid()
    wake_r, wake_w = os.pipe()
    os.set_blocking(wake_r, False)
    os.set_blocking(wake_w, False)
    signal.set_wakeup_fd(wake_w)
    signal.signal(signal.SIGCHLD, lambda *_: None)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the scheduler's to handle
    stopping = False

    def on_term(*_: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, on_term)

    def reap() -> None:
        while children:
            try:
                pid, status, usage = os.wait4(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            ident = children.pop(pid, None)
            # The check is over: so is anything it left running in its session.
            with contextlib.suppress(OSError):
                os.killpg(pid, signal.SIGKILL)
            if ident is not None:
                _send(sock, {"id": ident, "exit": os.waitstatus_to_exitcode(status),
                             "cpu": round(usage.ru_utime + usage.ru_stime, 6)})

    while not stopping:
        try:
            ready, _, _ = select.select([sock.fileno(), wake_r], [], [])
        except InterruptedError:
            continue
        if wake_r in ready:
            with contextlib.suppress(BlockingIOError):
                while os.read(wake_r, 512):
                    pass
            reap()
        if sock.fileno() not in ready:
            continue
        try:
            data, fds, _flags, _addr = socket.recv_fds(sock, _MAX_MESSAGE, 2)
        except OSError:
            break
        if not data:
            break  # the scheduler closed or died
        try:
            request = json.loads(data)
            ident = int(request["id"])
            if len(fds) != 2 or not isinstance(request.get("argv"), list):
                raise ValueError("a request needs argv and two fds")
        except (ValueError, KeyError, TypeError) as exc:
            for fd in fds:
                os.close(fd)
            print(f"vigil zygote: bad request: {exc}", file=sys.stderr)
            continue
        sys.stdout.flush()
        sys.stderr.flush()
        try:
            pid = os.fork()
        except OSError as exc:
            _send(sock, {"id": ident, "error": f"fork: {exc}"})
            for fd in fds:
                os.close(fd)
            continue
        if pid == 0:
            _child(sock, (wake_r, wake_w), request, fds, zygote_pid)
        for fd in fds:
            os.close(fd)
        children[pid] = ident
        _send(sock, {"id": ident, "pid": pid})
        reap()
    for pid in list(children):
        with contextlib.suppress(OSError):
            os.killpg(pid, signal.SIGKILL)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or not args[0].isdigit():
        print("usage: python -m monitor.zygote FD [--no-preload]  (started by the scheduler)",
              file=sys.stderr)
        return 2
    sock = socket.socket(fileno=int(args[0]))
    original = os.environ.pop(_ORIGINAL_PYTHONPATH, None)
    if original is not None:
        if original:
            os.environ["PYTHONPATH"] = original
        else:
            os.environ.pop("PYTHONPATH", None)
    if "--no-preload" not in args:
        _preload()
    _send(sock, {"ready": True})
    return serve(sock)


if __name__ == "__main__":
    sys.exit(main())
