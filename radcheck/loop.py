"""The self-test loop, run by supervisor (``vigil radcheck``).

Every ``[Self Test] Test_Frequency_sec`` it asks the local engine for an
Access-Accept (see :mod:`radcheck.probe`) and counts consecutive
failures. After ``Errors_Before_Restart`` of them it restarts the
``[Radius] Program`` through supervisord's XML-RPC socket, sends one outage
alert, and keeps testing; if the engine still fails it is restarted again
after twice as many further failures each time, up to 16 x
``Errors_Before_Restart`` (logged, no new mail: one outage, one mail). The
first Access-Accept after an alerted outage sends the recovery notice. Mail
goes out from a worker thread, flood-limited (:mod:`vigil.alerts`), so a dead
SMTP server never delays a test.

After every test the result is written atomically to ``[Self Test]
State_File`` for the check plugins::

    {"time": unix, "ok": bool, "consecutive_failures": int, "last_error": str|null,
     "rtt_ms": float|null, "restarts": int, "last_restart": unix|null, "pid": int, ...}

``Path_To_Lock_File`` keeps a second radcheck from running
(:mod:`vigil.pidlock`). SIGTERM/SIGINT stop it (queued alerts get
``SMTP_Timeout_sec`` + 1 s); SIGHUP re-reads the configuration before the next
test (a bad file is logged and the old values kept).
"""

from __future__ import annotations

import logging
import os
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from radcheck import mail
from radcheck.probe import ProbeResult, SelfTest, probe
from vigil import alerts, statefile
from vigil.config import Config, ConfigError
from vigil.config import load as load_config
from vigil.pidlock import LockError, LockHeld, PidLock
from vigil.runbooks import runbook_link
from vigil.supervisor_client import Supervisor, SupervisorError, supervisor_socket

log = logging.getLogger(__name__)

FIRST_TEST_DELAY_SEC = 5.0
MAX_BACKOFF_DOUBLINGS = 4  # at most Errors_Before_Restart x 16 failures between restarts


class Notifier(Protocol):
    def submit(self, subject: str, body: str, kind: str = "alert") -> bool: ...


@dataclass(frozen=True)
class Settings:
    test: SelfTest
    frequency: float
    errors_before_restart: int
    program: str
    state_path: Path
    lock_path: Path

    @classmethod
    def from_config(cls, cfg: Config) -> Settings:
        st = cfg.section("Self Test")
        test = SelfTest(host=cfg.get("Radius", "Host"), port=cfg.get("Radius", "Auth_Port"),
                        secret=st["Shared_Secret"].reveal().encode(),
                        nas_ip=st["NAS-IP-Address"], user=st["User-Name"],
                        password=st["Password"].reveal(), timeout=float(st["Timeout_sec"]))
        return cls(test=test, frequency=float(st["Test_Frequency_sec"]),
                   errors_before_restart=int(st["Errors_Before_Restart"]),
                   program=cfg.get("Radius", "Program"),
                   state_path=cfg.state_file("Self Test", "State_File", "radcheck.json"),
                   lock_path=cfg.path("Self Test", "Path_To_Lock_File"))


def supervisor_restarter(cfg: Config) -> Callable[[str], str]:
    client = Supervisor(supervisor_socket(cfg), cfg.get("Supervisor", "RPC_Timeout_sec"))
    return client.restart


class RadCheck:
    """The test-and-restart logic; probe, restarter, notifier and clock are replaceable."""

    def __init__(self, cfg: Config, settings: Settings, *,
                 probe: Callable[[SelfTest], ProbeResult] = probe,
                 restarter: Callable[[str], str],
                 notifier: Notifier,
                 clock: Callable[[], float] = time.time,
                 startup_grace: float = 0.0) -> None:
        if settings.errors_before_restart < 1:
            # The option's converter already refuses it; a direct caller must too.
            raise ValueError("errors_before_restart must be at least 1")
        self.cfg = cfg
        self.settings = settings
        self.probe = probe
        self.restarter = restarter
        self.notifier = notifier
        self.clock = clock
        self.consecutive_failures = 0
        self.failures_since_restart = 0
        self.restarts = 0
        self.last_restart: float | None = None
        self.outage_since: float | None = None
        self.outage_alerted = False
        self.outage_restarts = 0
        self.last: ProbeResult | None = None
        # Until the engine has answered once, or this grace is over, failures are
        # reported but do not lead to a restart: at boot supervisord starts the
        # engine and radcheck together, and the engine may need a while to listen.
        self.grace_until = clock() + startup_grace
        self.seen_ok = False
        self._resume()

    def _resume(self) -> None:
        """Carry counters and an alerted outage over a radcheck restart."""
        try:
            old = statefile.read_json(self.settings.state_path, default=None)
        except statefile.CorruptStateError as exc:
            log.error("ignoring radcheck state: %s", exc)
            return
        if not isinstance(old, dict):
            return
        self.restarts = int(old.get("restarts") or 0)
        self.last_restart = old.get("last_restart")
        if not old.get("ok") and old.get("outage_alerted"):
            self.outage_alerted = True
            self.outage_since = old.get("outage_since")
            self.consecutive_failures = int(old.get("consecutive_failures") or 0)
            log.info("resuming an alerted outage (since %s, %d failures)",
                     self.outage_since, self.consecutive_failures)

    def _values(self, **extra: Any) -> dict[str, Any]:
        t = self.settings.test
        return {"program": self.settings.program, "target": t.target, "user": t.user,
                "frequency": f"{self.settings.frequency:g}", "timeout": f"{t.timeout:g}",
                "failures": self.consecutive_failures,
                "runbook": runbook_link(self.cfg, *mail.RUNBOOK), **extra}

    def _notify(self, template: str, kind: str, **values: Any) -> None:
        subject, body = alerts.render(self.cfg, template, mail.TEMPLATES[template],
                                      **self._values(**values))
        self.notifier.submit(subject, body, kind)

    def run_once(self) -> ProbeResult:
        result = self.probe(self.settings.test)
        now = self.clock()
        self.last = result
        if result.ok:
            self._passed(result, now)
        else:
            self._failed(result, now)
        self._write_state(now)
        return result

    def _passed(self, result: ProbeResult, now: float) -> None:
        self.seen_ok = True
        if self.consecutive_failures:
            log.warning("self-test OK again after %d failure(s) (%.1f ms)",
                        self.consecutive_failures, result.rtt_ms or 0.0)
        else:
            log.debug("self-test OK (%.1f ms)", result.rtt_ms or 0.0)
        if self.outage_alerted:
            since = (time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(self.outage_since))
                     if self.outage_since else "-")
            self._notify(mail.RECOVERY, "radcheck-recovery", rtt_ms=result.rtt_ms,
                         restarts=self.outage_restarts, outage_since=since)
        self.consecutive_failures = 0
        self.failures_since_restart = 0
        self.outage_since = None
        self.outage_alerted = False
        self.outage_restarts = 0

    def restart_threshold(self) -> int:
        """Failures that lead to the next restart: Errors_Before_Restart, then doubling.

        A restart that did not help is unlikely to help at once again (a
        configuration mismatch, a dependency down); restarting a live engine
        every few tests would only cut the calls it still carries.
        """
        factor: int = 2 ** min(self.outage_restarts, MAX_BACKOFF_DOUBLINGS)
        return self.settings.errors_before_restart * factor

    def _failed(self, result: ProbeResult, now: float) -> None:
        self.consecutive_failures += 1
        if self.outage_since is None:
            self.outage_since = now
        if not self.seen_ok and now < self.grace_until:
            log.warning("self-test failed (%s) during the start-up grace (%.0f s left; no "
                        "restart before the engine has answered once): %s", result.kind,
                        self.grace_until - now, result.error)
            return
        self.failures_since_restart += 1
        n = self.restart_threshold()
        log.warning("self-test failed (%d/%d, %s): %s", self.failures_since_restart, n,
                    result.kind, result.error)
        if self.failures_since_restart < n:
            return
        self.failures_since_restart = 0
        program = self.settings.program
        log.error("restarting %s after %d consecutive self-test failures", program,
                  self.consecutive_failures)
        try:
            outcome = self.restarter(program)
            log.warning("restarted %s: %s", program, outcome)
        except SupervisorError as exc:
            outcome = f"FAILED: {exc}"
            log.error("could not restart %s: %s", program, exc)
        self.restarts += 1
        self.outage_restarts += 1
        self.last_restart = now
        if not self.outage_alerted:
            self._notify(mail.OUTAGE, "radcheck-outage", last_error=result.error,
                         restart=outcome)
            self.outage_alerted = True
        else:
            log.error("%s still failing after %d restart(s) in this outage (alert already "
                      "sent)", program, self.outage_restarts)

    def state(self, now: float) -> dict[str, Any]:
        r = self.last
        return {"time": now, "ok": bool(r and r.ok),
                "consecutive_failures": self.consecutive_failures,
                "last_error": r.error if r else None, "rtt_ms": r.rtt_ms if r else None,
                "restarts": self.restarts, "last_restart": self.last_restart,
                "pid": os.getpid(), "kind": r.kind if r else None,
                "outage_since": self.outage_since, "outage_alerted": self.outage_alerted,
                "program": self.settings.program, "target": self.settings.test.target}

    def _write_state(self, now: float) -> None:
        try:
            statefile.write_json(self.settings.state_path, self.state(now))
        except OSError as exc:
            log.error("cannot write radcheck state %s: %s", self.settings.state_path, exc)

    def run(self, stop: threading.Event, first_delay: float = FIRST_TEST_DELAY_SEC,
            between: Callable[[], None] | None = None) -> None:
        """Test every ``frequency`` s (start to start) until ``stop`` is set.

        ``between`` runs before each test (serve() applies a SIGHUP reload there).
        """
        next_at = time.monotonic() + first_delay
        while not stop.wait(max(0.0, next_at - time.monotonic())):
            if between is not None:
                between()
            started = time.monotonic()
            try:
                self.run_once()
            except Exception:
                # The watchdog of the engine must not die of its own bug.
                log.exception("self-test round crashed")
            next_at = max(started + self.settings.frequency, time.monotonic())


def serve(cfg: Config, *, first_delay: float | None = None) -> int:
    """``vigil radcheck``: run in the foreground until SIGTERM/SIGINT; the exit code."""
    settings = Settings.from_config(cfg)
    lock = PidLock(settings.lock_path, what="radcheck")
    try:
        lock.acquire()
    except LockHeld as exc:
        log.error("%s; exiting", exc)
        return 1
    except LockError as exc:
        raise ConfigError(cfg.source, "Self Test", "Path_To_Lock_File", str(exc)) from exc
    stop = threading.Event()
    reload_wanted = threading.Event()

    def on_signal(signum: int, _frame: object) -> None:
        log.info("%s received; stopping", signal.Signals(signum).name)
        stop.set()

    def on_hup(_signum: int, _frame: object) -> None:
        reload_wanted.set()

    previous = {s: signal.signal(s, on_signal) for s in (signal.SIGTERM, signal.SIGINT)}
    previous[signal.SIGHUP] = signal.signal(signal.SIGHUP, on_hup)
    worker = alerts.AlertWorker(cfg).start()
    try:
        grace = settings.errors_before_restart * (settings.frequency + settings.test.timeout)
        check = RadCheck(cfg, settings, restarter=supervisor_restarter(cfg), notifier=worker,
                         startup_grace=grace)

        def reload() -> None:
            if not reload_wanted.is_set():
                return
            reload_wanted.clear()
            try:
                new_cfg = load_config(cfg.source)
                new = Settings.from_config(new_cfg)
            except ConfigError as exc:
                log.error("SIGHUP: configuration not reloaded, keeping the old one: %s", exc)
                return
            if new.lock_path != check.settings.lock_path:
                log.warning("SIGHUP: Path_To_Lock_File changes at the next start only")
            check.cfg, check.settings, worker.cfg = new_cfg, new, new_cfg
            check.restarter = supervisor_restarter(new_cfg)
            log.info("SIGHUP: configuration reloaded from %s (every %g s, timeout %g s, "
                     "restart %s after %d failures)", new_cfg.source, new.frequency,
                     new.test.timeout, new.program, new.errors_before_restart)

        t = settings.test
        log.info("radcheck started (pid %d): Access-Request for %s to %s every %g s, "
                 "timeout %g s, restart %s after %d failures", os.getpid(), t.user, t.target,
                 settings.frequency, t.timeout, settings.program,
                 settings.errors_before_restart)
        delay = min(settings.frequency, FIRST_TEST_DELAY_SEC) if first_delay is None \
            else first_delay
        check.run(stop, delay, between=reload)
    finally:
        left = worker.close(timeout=float(cfg.get("Email", "SMTP_Timeout_sec")) + 1.0)
        if left:
            log.error("%d alert(s) lost at exit", left)
        lock.release()
        for s, h in previous.items():
            signal.signal(s, h)
        log.info("radcheck stopped")
    return 0
