"""``vigil site witness``: a third site's view of the primary.

Runs on the central server. It probes the primary database itself (the
same direct probe as the watchdog) every probe interval and tells whoever
connects, in one JSON line, whether it still sees the primary and how old
that view is. It says nothing else and reads nothing from the client.
"""

from __future__ import annotations

import json
import logging
import socket
import threading
import time
from collections.abc import Callable

from redundancy.site.probes import PathResult

log = logging.getLogger(__name__)


class Witness:
    def __init__(self, probe: Callable[[], PathResult], host: str, port: int,
                 interval: float = 1.0) -> None:
        self.probe = probe
        self.interval = interval
        self._view: tuple[PathResult, float] | None = None
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self.sock = socket.create_server((host, port), reuse_port=False)
        self.sock.settimeout(0.5)

    @property
    def port(self) -> int:
        return int(self.sock.getsockname()[1])

    def answer(self) -> bytes:
        with self._lock:
            view = self._view
        if view is None:
            body = {"sees_primary": False, "age_sec": 0, "detail": "no probe yet"}
        else:
            r, at = view
            body = {"sees_primary": r.verdict == "alive", "age_sec": round(
                time.monotonic() - at, 3), "detail": r.detail}
        return (json.dumps(body) + "\n").encode()

    def _probe_loop(self) -> None:
        last = None
        while not self._stop.is_set():
            r = self.probe()
            with self._lock:
                self._view = (r, time.monotonic())
            if r.verdict != last:
                log.info("witness: primary %s (%s)", r.verdict, r.detail)
                last = r.verdict
            self._stop.wait(self.interval)

    def serve_forever(self) -> None:
        t = threading.Thread(target=self._probe_loop, name="witness-probe", daemon=True)
        t.start()
        log.info("witness listening on port %d", self.port)
        while not self._stop.is_set():
            try:
                conn, _addr = self.sock.accept()
            except TimeoutError:
                continue
            except OSError as exc:
                if self._stop.is_set():
                    break
                log.warning("witness accept failed: %s", exc)
                continue
            try:
                conn.settimeout(2)
                conn.sendall(self.answer())
            except OSError as exc:
                log.info("witness client went away: %s", exc)
            finally:
                conn.close()
        self.sock.close()

    def stop(self, *_: object) -> None:
        self._stop.set()
