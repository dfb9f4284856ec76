"""``vigil site watchdog``: the secondary site's supervisor program.

Every ``[Watchdog] Probe_Interval_sec`` it runs the probe paths (in
parallel, each within its own timeouts), asks :class:`~redundancy.site.decide.Judge`
and acts: to stand-alone (persist the mode, which makes this site's RADIUS
answer at its next packet; run the hook; alert on-call) or failback. Each
round's results go to ``<State_Dir>/site-watchdog.json`` for ``vigil site
status`` and the check plugins. One log line per change, not per round.
"""

from __future__ import annotations

import datetime as dt
import logging
import signal
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from redundancy.site.decide import Judge, Policy
from redundancy.site.probes import PathResult, Probe, run_all
from vigil import site_mode as modes
from vigil import statefile

log = logging.getLogger(__name__)
STATE_FILE = "site-watchdog.json"


def policy_from(cfg: Any) -> Policy:
    w = cfg.section("Watchdog")
    return Policy(failed_probes=w["Failed_Probes"], partition_policy=w["Partition_Policy"],
                  min_standalone=w["Min_Standalone_sec"],
                  failback_healthy=w["Failback_Healthy_sec"], auto_failback=w["Auto_Failback"],
                  quiet_after_failback=w["Quiet_After_Failback_sec"])


class Watchdog:
    def __init__(self, probes: dict[str, Probe], judge: Judge, state_dir: Path,
                 on_standalone: Callable[[str], None], on_failback: Callable[[], bool],
                 interval: float = 1.0, clock: Callable[[], float] = time.monotonic) -> None:
        self.probes = probes
        self.judge = judge
        self.mode_file = modes.mode_path(state_dir)
        self.state_file = Path(state_dir) / STATE_FILE
        self.on_standalone = on_standalone
        self.on_failback = on_failback
        self.interval = interval
        self.clock = clock
        self._stop = False
        self._last_summary = ""

    def stop(self, *_: object) -> None:
        self._stop = True

    def _sync_mode(self, now: float) -> None:
        """Follow switches made by an admin (`vigil site standalone|failback`)."""
        try:
            m = modes.read(self.mode_file)
        except statefile.CorruptStateError as exc:
            log.error("site mode file corrupt: %s", exc)
            return
        if m.standalone and not self.judge.standalone:
            self.judge.standalone, self.judge.by_watchdog = True, m.by == "watchdog"
            self.judge.standalone_since, self.judge.healthy_since = now, None
        elif not m.standalone and self.judge.standalone:
            self.judge.failed_back(now)

    def round(self) -> str | None:
        now = self.clock()
        self._sync_mode(now)
        results = run_all(self.probes)
        verdicts = {k: r.verdict for k, r in results.items()}
        action = self.judge.round(verdicts, now)
        if action == "standalone":
            log.warning("primary declared gone: %s", self.judge.last_reason)
            self.on_standalone(self.judge.last_reason)
        elif action == "failback":
            log.warning("primary healthy: failing back (%s)", self.judge.last_reason)
            if self.on_failback():
                self.judge.failed_back(self.clock())
        summary = self.judge.last_reason
        if summary != self._last_summary:
            log.info("watchdog: %s", summary)
            self._last_summary = summary
        self._write(results, summary)
        return action

    def _write(self, results: dict[str, PathResult], summary: str) -> None:
        data = {"updated_at": dt.datetime.now(dt.UTC).replace(tzinfo=None).isoformat(
            timespec="seconds"), "summary": summary,
            "standalone": self.judge.standalone, "dead_rounds": self.judge.dead_rounds,
            "paths": {k: r.to_json() for k, r in results.items()}}
        try:
            statefile.write_json(self.state_file, data)
        except OSError as exc:
            log.warning("cannot write %s: %s", self.state_file, exc)

    def run_forever(self) -> None:
        signal.signal(signal.SIGTERM, self.stop)
        signal.signal(signal.SIGINT, self.stop)
        while not self._stop:
            start = self.clock()
            try:
                self.round()
            except Exception:  # the watchdog itself must outlive any bug in a round
                log.exception("watchdog round failed")
            left = self.interval - (self.clock() - start)
            end = time.monotonic() + max(0.0, left)
            while not self._stop and time.monotonic() < end:
                time.sleep(min(0.1, end - time.monotonic()))


def build(cfg: Any) -> Watchdog:
    from redundancy.site import probes as probe_mod
    from redundancy.site.failback import FailbackError
    from redundancy.site.switch import after_switch

    state_dir = cfg.path("Site", "State_Dir")
    mode_file = modes.mode_path(state_dir)
    judge = Judge(policy_from(cfg))
    try:
        m = modes.read(mode_file)
        judge.standalone, judge.by_watchdog = m.standalone, m.by == "watchdog"
        if m.standalone:
            judge.standalone_since = time.monotonic()
    except statefile.CorruptStateError as exc:
        log.error("site mode file corrupt, starting as stand-by: %s", exc)
    if not mode_file.exists():
        modes.write(mode_file, modes.STANDBY, "watchdog started", "watchdog")

    def to_standalone(reason: str) -> None:
        modes.write(mode_file, modes.STANDALONE, reason, "watchdog")
        after_switch(cfg, modes.STANDALONE, reason)

    def failback() -> bool:
        from redundancy.site.failback import from_config

        fb = from_config(cfg, progress=lambda line: log.info("failback: %s", line))
        try:
            report = fb.run(lambda: modes.write(mode_file, modes.STANDBY,
                                                "automatic failback", "failback"))
        except FailbackError as exc:
            log.error("automatic failback stopped (will retry): %s", exc)
            return False
        after_switch(cfg, modes.STANDBY, f"automatic failback: {report.transferred} xDR(s) "
                                         f"transferred in {report.seconds:.1f} s")
        return True

    return Watchdog(probe_mod.build(cfg), judge, state_dir, to_standalone, failback,
                    cfg.get("Watchdog", "Probe_Interval_sec"))
