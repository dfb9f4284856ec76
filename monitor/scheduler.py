"""The per-server scheduler: every pass runs the due checks in parallel and sends the results.

One pass (every ``Pass_Period_sec``, 60 s as in the source):

1. pick the checks whose ``interval_sec`` has come round;
2. run them, ``Parallelism`` at a time, each with its own hard timeout
   (:func:`monitor.runner.run_plugin`); a hung, crashing or missing plugin
   gives one CRITICAL/UNKNOWN result and never holds up the others. Vigil's
   own plugins are forked from a long-lived, pre-imported worker
   (:mod:`monitor.zygote`) instead of starting Python for each;
3. add the host result (this server is alive, and how its checks went) and
   the site heartbeat (see docs/monitor.md, "One alert per silent site");
4. hand everything to the :class:`~monitor.transport.Outbox`, which spools
   first and sends oldest first.

The clock and the outbox reach the scheduler as objects so tests can drive
passes directly.
"""

from __future__ import annotations

import logging
import math
import os
import resource
import threading
import time
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import wait as futures_wait
from dataclasses import dataclass, field
from typing import Protocol

from monitor.runner import UNKNOWN, Outcome, ProcessTracker, clean_line, run_plugin
from monitor.startup import StartupGate
from monitor.transport import Delivery, Outbox
from monitor.zygote import Zygote, ZygoteError
from nsca.errors import FieldError
from nsca.packet import check_fields
from nsca.result import CheckResult
from vigil.service_state import ServiceState

log = logging.getLogger(__name__)

SITE_HEARTBEAT_SERVICE = "site-heartbeat"
# A pass waits for its checks up to this share of the period, then sends what it has.
_PASS_WAIT = 0.8


class CheckLike(Protocol):
    """What the scheduler needs of a ``checks.catalog.CheckSpec``."""

    @property
    def name(self) -> str: ...
    @property
    def service_description(self) -> str: ...
    @property
    def command(self) -> Sequence[str]: ...
    @property
    def interval_sec(self) -> float: ...
    @property
    def timeout_sec(self) -> float: ...
    @property
    def problem(self) -> str:
        """Why the check cannot run (reported UNKNOWN each pass); empty when it can."""
        ...


@dataclass
class PassReport:
    started_at: float  # wall clock
    duration: float
    outcomes: list[tuple[CheckLike, Outcome]] = field(default_factory=list)
    results: list[CheckResult] = field(default_factory=list)
    delivery: Delivery | None = None
    cpu_sec: float = 0.0  # plugins' CPU (children) plus the scheduler's own
    interrupted: bool = False
    still_running: list[str] = field(default_factory=list)
    waiting_for: str | None = None  # the start-up grace held the checks back

    def counts(self) -> Counter[str]:
        return Counter(o.state for _, o in self.outcomes)


def _cpu_now() -> float:
    own = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


def host_summary(host: str, report: PassReport) -> str:
    c = report.counts()
    parts = ", ".join(f"{c.get(s.text, 0)} {s.text}" for s in ServiceState)
    late = f"; still running: {', '.join(report.still_running)}" if report.still_running else ""
    if report.waiting_for:
        return (f"OK - vigil scheduler on {host} starting: checks wait for "
                f"{report.waiting_for}")
    return (f"OK - vigil scheduler on {host}: {len(report.outcomes)} checks in "
            f"{report.duration:.1f} s ({parts}){late}")


def heartbeat_results(site: str, host: str, ts: float) -> list[CheckResult]:
    """What keeps the site's virtual host fresh; any one live host of the site sends it."""
    text = f"OK - heartbeat from {host}"
    return [CheckResult(site, None, 0, text, ts),
            CheckResult(site, SITE_HEARTBEAT_SERVICE, 0, text, ts)]


class Scheduler:
    def __init__(self, checks: Sequence[CheckLike], *, host_name: str, site_name: str | None,
                 outbox: Outbox | None, parallelism: int = 8, max_output: int = 65536,
                 env: Mapping[str, str] | None = None,
                 clock: Callable[[], float] = time.monotonic,
                 gate: StartupGate | None = None, workers: bool = True) -> None:
        self.checks = list(checks)
        self.host_name = host_name
        self.site_name = site_name
        self.outbox = outbox
        self.parallelism = parallelism
        self.max_output = max_output
        self.env = dict(env) if env is not None else None
        self.clock = clock
        self.gate = gate
        self.tracker = ProcessTracker()
        # workers=False: every plugin as its own subprocess (the old way, kept for comparison)
        self.zygote = Zygote(env=self.env) if workers else None
        self._stop = threading.Event()
        self._last_start: dict[str, float] = {}
        self._reload: Callable[[], Sequence[CheckLike]] | None = None
        self._unfit: set[str] = set()
        self._running: dict[str, tuple[CheckLike, Future[Outcome]]] = {}
        self._pool = ThreadPoolExecutor(max_workers=parallelism, thread_name_prefix="check")

    # ------------------------------------------------------------- passes
    def due(self, now: float, period: float) -> list[CheckLike]:
        """Checks whose interval has come round; half a period of slack absorbs jitter."""
        out = []
        for spec in self.checks:
            last = self._last_start.get(spec.name)
            if spec.name in self._running:
                continue
            if last is None or now - last >= spec.interval_sec - period / 2:
                out.append(spec)
        return out

    def _run_one(self, spec: CheckLike) -> Outcome:
        problem = spec.problem
        if problem:
            return Outcome(UNKNOWN, clean_line(f"UNKNOWN - check {spec.name} not run: "
                                               f"{problem}"), 0.0, time.time())
        return run_plugin(list(spec.command), float(spec.timeout_sec),
                          max_output=self.max_output, env=self.env, name=spec.name,
                          tracker=self.tracker, zygote=self.zygote)

    def run_pass(self, period: float = 0.0, *, everything: bool = False) -> PassReport:
        """One pass. With a ``period``, a check still running near the end of it is left
        to finish on its own: its result goes with a later pass, and the others (and
        the host result) are not held up by a check with a long timeout."""
        start = self.clock()
        wall = time.time()
        cpu0 = self.cpu_seconds()
        waiting = None if everything or self.gate is None else self.gate.waiting_for()
        if waiting is not None:
            report = PassReport(started_at=wall, duration=0.0, waiting_for=waiting)
            report.results = self.results_of(report)
            if self.outbox is not None:
                report.delivery = self.outbox.deliver(report.results)
            report.cpu_sec = self.cpu_seconds() - cpu0
            return report
        specs = list(self.checks) if everything else self.due(start, period)
        specs = [s for s in specs if s.name not in self._running]
        for spec in specs:
            self._last_start[spec.name] = start
            self._running[spec.name] = (spec, self._pool.submit(self._run_one, spec))
        report = PassReport(started_at=wall, duration=0.0)
        pending = [fut for _, fut in self._running.values()]
        if everything or period <= 0:
            futures_wait(pending)
        else:
            futures_wait(pending, timeout=max(0.0, start + period * _PASS_WAIT - self.clock()))
        order = {c.name: i for i, c in enumerate(self.checks)}
        for name, (spec, fut) in sorted(self._running.items(),
                                        key=lambda kv: order.get(kv[0], len(order))):
            if fut.done():
                del self._running[name]
                report.outcomes.append((spec, fut.result()))
            else:
                report.still_running.append(name)
        report.duration = self.clock() - start
        if self._stop.is_set():
            # Plugins were killed under us: their "results" are ours, not theirs.
            report.interrupted = True
            report.cpu_sec = self.cpu_seconds() - cpu0
            log.info("monitor: pass interrupted by stop; its results are not sent")
            return report
        if report.still_running:
            log.warning("monitor: still running at the end of the pass, reported later: %s",
                        ", ".join(report.still_running))
        report.results = self.results_of(report)
        if self.outbox is not None:
            report.delivery = self.outbox.deliver(report.results)
        report.cpu_sec = self.cpu_seconds() - cpu0
        return report

    def cpu_seconds(self) -> float:
        """CPU so far of the scheduler, its plugins and the plugin worker's children."""
        return _cpu_now() + (self.zygote.cpu_seconds() if self.zygote is not None else 0.0)

    def results_of(self, report: PassReport) -> list[CheckResult]:
        results = [CheckResult(self.host_name, spec.service_description, o.status, o.output,
                               o.finished_at) for spec, o in report.outcomes]
        now = time.time()
        results.append(CheckResult(self.host_name, None, 0,
                                   host_summary(self.host_name, report), now))
        if self.site_name:
            results.extend(heartbeat_results(self.site_name, self.host_name, now))
        return [r for r in results if self._fits(r)]

    def _fits(self, r: CheckResult) -> bool:
        """An NSCA packet can carry it; else say so once, not every minute."""
        try:
            check_fields(r)
        except FieldError as exc:
            key = f"{r.host}/{r.service}"
            if key not in self._unfit:
                self._unfit.add(key)
                log.error("monitor: result %s cannot travel over NSCA and is not sent: %s",
                          key, exc)
            return False
        return True

    # --------------------------------------------------------- the loop
    def run_forever(self, period: float,
                    on_pass: Callable[[PassReport], None] | None = None) -> None:
        log.info("monitor: scheduler for %s started: %d checks, a pass every %g s, %d at a time",
                 self.host_name, len(self.checks), period, self.parallelism)
        if self.zygote is not None:
            # the worker's imports take a second or more: not inside the first pass
            try:
                if not self.zygote.start():
                    log.warning("monitor: plugin worker not ready yet; checks wait for it")
            except ZygoteError as exc:
                log.warning("monitor: plugin worker unavailable (%s); plugins run as "
                            "subprocesses", exc)
        next_at = self.clock()
        while not self._stop.is_set():
            self._apply_reload()
            report = self.run_pass(period)
            if not report.interrupted:
                self._log_pass(report)
                if on_pass is not None:
                    on_pass(report)
            next_at += period
            if report.waiting_for is not None and self._wait_for_gate(next_at):
                next_at = self.clock()  # the grace ended: the first real pass now
                continue
            now = self.clock()
            if next_at < now:
                missed = math.ceil((now - next_at) / period)
                log.warning("monitor: pass took %.1f s, longer than the period %g s; "
                            "skipping %d start(s)", report.duration, period, missed)
                next_at += missed * period
            self._stop.wait(max(0.0, next_at - now))
        log.info("monitor: scheduler for %s stopped", self.host_name)

    def _wait_for_gate(self, until: float) -> bool:
        """During the grace, look every second whether it ended; True if it did."""
        assert self.gate is not None
        while not self._stop.is_set() and self.clock() < until:
            if self.gate.waiting_for() is None:
                if self.gate.timed_out:
                    log.warning("monitor: start-up grace over without the engine ready; "
                                "running the checks")
                else:
                    log.info("monitor: start-up grace ended: the engine answers")
                return True
            self._stop.wait(min(1.0, max(0.0, until - self.clock())))
        return False

    def _log_pass(self, report: PassReport) -> None:
        if report.waiting_for is not None:
            log.info("monitor: start-up grace: checks wait for %s", report.waiting_for)
            return
        c = report.counts()
        d = report.delivery
        log.info("monitor: pass of %d checks in %.2f s (cpu %.2f s): %s; sent %d, %d pass(es) "
                 "waiting", len(report.outcomes), report.duration, report.cpu_sec,
                 " ".join(f"{s.text}={c.get(s.text, 0)}" for s in ServiceState),
                 d.sent if d else 0, d.waiting_passes if d else 0)

    def request_reload(self, loader: Callable[[], Sequence[CheckLike]]) -> None:
        """Re-read the checks before the next pass (SIGHUP)."""
        self._reload = loader

    def _apply_reload(self) -> None:
        loader, self._reload = self._reload, None
        if loader is None:
            return
        try:
            checks = list(loader())
        except Exception as exc:  # a bad file must not stop the running checks
            log.error("monitor: checks not reloaded, keeping the %d running: %s",
                      len(self.checks), exc)
            return
        log.info("monitor: checks reloaded: %d (were %d)", len(checks), len(self.checks))
        self.checks = checks

    def stop(self) -> None:
        """Stop the loop and kill the plugins running now (safe from a signal handler)."""
        self._stop.set()
        self.tracker.kill_all()

    def close(self) -> None:
        """Kill what still runs (a straggler from the last pass) and end the workers."""
        self.tracker.kill_all()
        self._pool.shutdown(wait=True, cancel_futures=True)
        if self.zygote is not None:
            self.zygote.close()


def plugin_env(config_path: str | None) -> dict[str, str]:
    """The plugins read the same configuration file as the scheduler."""
    env = dict(os.environ)
    if config_path and not config_path.startswith("<"):
        env["VIGIL_CONF"] = config_path
    return env
