"""The watchdog's judgement: pure, no clock or socket of its own (tests feed it).

Each round every probe path gives a :data:`Verdict`: ``alive``, ``dead``,
or ``unknown`` (the path could not tell, e.g. the stand-by itself is down or
the witness is unreachable). Rules, after orchestrator's DeadMaster and
MaxScale's ``failcount`` / ``verify_master_failure``:

- **Primary gone** (stand-by -> stand-alone) only when the paths agree: at
  least two answered, none says alive (a replica or RADIUS that still sees
  the primary vetoes), for ``Failed_Probes`` consecutive rounds. With the
  ``witness`` partition policy the witness must say dead too. Within
  ``Quiet_After_Failback_sec`` of a failback EVERY configured path must say
  dead (no unknowns): a primary that just came back must not bounce us.
  In the ``serve`` policy the witness only informs: the source keeps both
  sites serving during a partition.
- **Primary healthy** (automatic failback) when the database and the RADIUS
  paths say alive for ``Failback_Healthy_sec`` without a break, and this site
  has been stand-alone at least ``Min_Standalone_sec``, and it was the
  watchdog that switched (an admin's switch, e.g. for a zero-downtime update,
  is ended by the admin).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

Verdict = Literal["alive", "dead", "unknown"]
DB, REPLICATION, RADIUS, WITNESS = "db", "replication", "radius", "witness"


@dataclass(frozen=True)
class Policy:
    failed_probes: int = 3
    partition_policy: str = "serve"  # serve | witness
    min_standalone: float = 300.0
    failback_healthy: float = 60.0
    auto_failback: bool = True
    quiet_after_failback: float = 600.0


@dataclass
class Judge:
    policy: Policy
    standalone: bool = False
    by_watchdog: bool = False
    standalone_since: float | None = None
    last_failback: float | None = None
    dead_rounds: int = 0
    healthy_since: float | None = None
    last_reason: str = ""
    history: list[str] = field(default_factory=list)

    def primary_gone(self, paths: dict[str, Verdict], now: float) -> tuple[bool, str]:
        if self.policy.partition_policy == "serve":
            # the witness informs (status, alerts) but does not veto: a site
            # cut off from the primary serves, as in the source
            paths = {k: v for k, v in paths.items() if k != WITNESS}
        answered = {k: v for k, v in paths.items() if v != "unknown"}
        alive = sorted(k for k, v in answered.items() if v == "alive")
        if alive:
            return False, f"primary seen by {', '.join(alive)}"
        if len(answered) < 2:
            return False, f"only {len(answered)} path(s) answered; never decide on one"
        if self.policy.partition_policy == "witness" and paths.get(WITNESS) != "dead":
            return False, "partition policy 'witness': the witness has not lost the primary"
        quiet = (self.last_failback is not None
                 and now - self.last_failback < self.policy.quiet_after_failback)
        if quiet and any(v != "dead" for v in paths.values()):
            return False, "just failed back: every path must say dead"
        return True, "paths agree the primary is gone: " + ", ".join(
            f"{k}={v}" for k, v in sorted(paths.items()))

    def healthy(self, paths: dict[str, Verdict]) -> bool:
        needed = [k for k in (DB, RADIUS) if k in paths]
        return bool(needed) and all(paths[k] == "alive" for k in needed)

    def round(self, paths: dict[str, Verdict], now: float) -> str | None:
        """One probe round; returns ``"standalone"``, ``"failback"`` or None."""
        if not self.standalone:
            gone, why = self.primary_gone(paths, now)
            self.dead_rounds = self.dead_rounds + 1 if gone else 0
            self.last_reason = why if not gone else (
                f"{why} ({self.dead_rounds}/{self.policy.failed_probes})")
            if gone and self.dead_rounds >= self.policy.failed_probes:
                self.standalone, self.by_watchdog = True, True
                self.standalone_since, self.dead_rounds = now, 0
                self.healthy_since = None
                return "standalone"
            return None
        if not self.healthy(paths):
            self.healthy_since = None
            self.last_reason = "stand-alone; primary not healthy: " + ", ".join(
                f"{k}={v}" for k, v in sorted(paths.items()))
            return None
        if self.healthy_since is None:
            self.healthy_since = now
        held = now - (self.standalone_since if self.standalone_since is not None else now)
        healthy_for = now - self.healthy_since
        self.last_reason = (f"stand-alone; primary healthy for {healthy_for:.0f} s, "
                            f"stand-alone for {held:.0f} s")
        if not (self.policy.auto_failback and self.by_watchdog):
            return None
        if healthy_for >= self.policy.failback_healthy and held >= self.policy.min_standalone:
            return "failback"
        return None

    def failed_back(self, now: float) -> None:
        self.standalone, self.by_watchdog = False, False
        self.standalone_since, self.healthy_since = None, None
        self.last_failback, self.dead_rounds = now, 0
