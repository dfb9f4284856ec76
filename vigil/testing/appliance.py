"""`make run`'s appliance (scripts/run-appliance.sh) started for a test.

Every program runs under supervisord in a throw-away run folder; the test
reads it as an operator would: ``vigil status``, the demo mail sink's files,
the state folder. :class:`Appliance` starts it; :func:`running` waits until the programs a
test needs are RUNNING and stops it the way Ctrl-C does, whatever the test did.
Knows no room: it drives the script and the ``vigil`` command.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any, TypeVar

from vigil.testing.wait import poll

REPO = Path(__file__).resolve().parents[2]
VIGIL = str(Path(sys.executable).parent / "vigil")


def clean_env(overrides: Mapping[str, str] | None = None) -> dict[str, str]:
    """This process's environment without its ``VIGIL*`` settings, plus ``overrides``.

    A throw-away appliance leaves the machine's Monitoring Plugins folder alone
    (``VIGIL_NO_PLUGIN_INSTALL``); supervisord hands the environment to every program.
    """
    env = {k: v for k, v in os.environ.items() if not k.startswith("VIGIL")}
    env["VIGIL_NO_PLUGIN_INSTALL"] = "1"
    env.update(overrides or {})
    return env


class Appliance:
    def __init__(self, run: Path, env: dict[str, str]) -> None:
        self.run = run
        self.conf = run / "vigil.conf"
        self.out = run.parent / "make-run.out"  # what `make run` prints: banner, steps
        self.env = env
        self.started = time.monotonic()
        with open(self.out, "wb") as fh:
            self.proc = subprocess.Popen([str(REPO / "scripts" / "run-appliance.sh"), str(run)],
                                         stdout=fh, stderr=subprocess.STDOUT, env=env)

    def vigil(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([VIGIL, "-c", str(self.conf), *args], capture_output=True,
                              text=True, timeout=60, env=self.env)

    def programs(self) -> dict[str, dict[str, Any]]:
        """``vigil status``'s programs by name; empty while the appliance is not up yet."""
        if not self.conf.exists():
            return {}
        r = self.vigil("status", "--json")
        try:
            return {p["name"]: p for p in json.loads(r.stdout)["programs"]}
        except (ValueError, KeyError):
            return {}

    def running(self, names: Iterable[str]) -> bool:
        up = {n for n, p in self.programs().items() if p.get("state") == "RUNNING"}
        return set(names) <= up

    def mails(self) -> list[str]:
        """What the demo's mail sink received, in the order of its file names."""
        return [p.read_text(errors="replace")
                for p in sorted((self.run / "mail" / "new").glob("*"))]

    def problem_subjects(self) -> list[str]:
        """Subjects of Nagios's PROBLEM notifications."""
        out = []
        for m in self.mails():
            subject = re.search(r"^Subject: (.*)$", m, re.M)
            if subject and subject.group(1).startswith("PROBLEM"):
                out.append(subject.group(1))
        return out

    def stop(self, timeout: float = 60) -> None:
        """Ctrl-C (supervisord stops every program), then a kill if that hangs."""
        if self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGINT)
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


A = TypeVar("A", bound=Appliance)


@contextlib.contextmanager
def running(app: A, programs: Iterable[str], timeout: float = 90) -> Iterator[A]:
    """``app`` once ``programs`` are RUNNING; stopped on the way out, whatever happened."""
    try:
        assert poll(lambda: app.running(programs), timeout, 0.5), \
            app.out.read_text()[-3000:]
        yield app
    finally:
        app.stop()
