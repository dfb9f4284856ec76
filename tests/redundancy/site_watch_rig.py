"""Site A in its own network namespace (real master), site B here (stand-by,
delta, `vigil radiusd`, `vigil site watchdog`), `radclient` as the gateway:
faults (kill -9, SIGSTOP, link cut, packet loss) and how long until site B
charges the first call. Shared by the tests and bench/bench_site_detection.py.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from billing.testing import ROOT
from tests.redundancy.site_rig import Sites, authorize_body, radclient, two_sites
from vigil import site_mode as modes
from vigil.testing import netns

WATCHDOG = ("[Watchdog]\nProbe_Interval_sec=1\nFailed_Probes=2\nConnect_Timeout_sec=1\n"
            "Read_Timeout_sec=1\nMin_Standalone_sec=1\nFailback_Healthy_sec=2\n"
            "Quiet_After_Failback_sec=5\nAuto_Failback=No\n")


class Rig:
    def __init__(self, sites: Sites, site_a: netns.Site, b: Any, dog: subprocess.Popen[bytes],
                 err: Path) -> None:
        self.sites, self.site_a, self.b, self.dog, self.err = sites, site_a, b, dog, err
        self.mode_file = b.state / modes.FILE_NAME

    def standalone(self) -> bool:
        return modes.read(self.mode_file).standalone

    def answered(self) -> bool:
        return "Access-Accept" in radclient(self.b, "auth", authorize_body(
            f"probe-{time.monotonic_ns()}"), timeout=0.3)

    def io_running(self) -> bool:
        rows = self.sites.standby.execute("SHOW SLAVE STATUS")
        # column 10 is Slave_IO_Running in MariaDB 10.11's SHOW SLAVE STATUS
        return bool(rows) and rows[0][10] == "Yes"

    def time_to(self, fault: Callable[[], None], timeout: float = 60
                ) -> tuple[float | None, float | None]:
        """(seconds to the first call answered by site B, seconds until the
        stand-by's own IO thread noticed) after ``fault``."""
        t0 = time.monotonic()
        fault()
        io_seen = answered = None
        while time.monotonic() - t0 < timeout and answered is None:
            if io_seen is None and not self.io_running():
                io_seen = time.monotonic() - t0
            if self.answered():
                answered = time.monotonic() - t0
            time.sleep(0.05)
        return answered, io_seen

    def flips_during(self, seconds: float) -> int:
        """Mode changes seen while ``seconds`` pass (polled)."""
        flips, last, end = 0, self.standalone(), time.monotonic() + seconds
        while time.monotonic() < end:
            now = self.standalone()
            flips += now != last
            last = now
            time.sleep(0.5)
        return flips


@contextlib.contextmanager
def rig(base: Path, subnet: int = 51, extra: str = "") -> Iterator[Rig]:
    name = f"vgs11a{os.getpid() % 100000}"
    with netns.Site(name, subnet) as site_a, two_sites(base, site_a) as sites:
        b = sites.site_b(extra=WATCHDOG + extra)
        b.start()
        err = b.base / "watchdog.stderr"
        with open(err, "w") as fh:
            dog = subprocess.Popen([sys.executable, "-m", "vigil.cli", "-c", str(b.config),
                                    "site", "watchdog"], cwd=ROOT, stdout=subprocess.DEVNULL,
                                   stderr=fh)
        try:
            deadline = time.monotonic() + 30
            while not (b.state / "site-watchdog.json").exists():
                if dog.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("watchdog did not start: " + err.read_text()[-2000:])
                time.sleep(0.2)
            yield Rig(sites, site_a, b, dog, err)
        finally:
            with contextlib.suppress(ProcessLookupError):
                if sites.master.proc is not None:
                    os.kill(sites.master.proc.pid, signal.SIGCONT)
            dog.terminate()
            try:
                dog.wait(15)
            except subprocess.TimeoutExpired:
                dog.kill()
                dog.wait()
            b.stop()
