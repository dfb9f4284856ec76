"""What follows a mode switch: the configured hook and the on-call alert."""

from __future__ import annotations

import logging
import os
import shlex
import subprocess
from typing import Any

log = logging.getLogger(__name__)


def run_hook(cfg: Any, mode: str, reason: str) -> bool:
    """Run [Watchdog] Hook with VIGIL_SITE_MODE set; True when it succeeded or is unset."""
    hook = cfg.get("Watchdog", "Hook")
    if not hook:
        return True
    env = dict(os.environ, VIGIL_SITE_MODE=mode, VIGIL_SITE_REASON=reason[:500],
               VIGIL_SITE_NAME=cfg.get("Site", "Name"))
    try:
        done = subprocess.run(shlex.split(hook), env=env, capture_output=True, text=True,
                              timeout=cfg.get("Watchdog", "Hook_Timeout_sec"))
    except (OSError, subprocess.TimeoutExpired) as exc:
        log.error("site hook %r failed: %s", hook, exc)
        return False
    if done.returncode != 0:
        log.error("site hook %r exited %d: %s", hook, done.returncode,
                  (done.stderr or done.stdout).strip()[-300:])
        return False
    log.info("site hook %r done for mode %s", hook, mode)
    return True


def alert(cfg: Any, mode: str, reason: str) -> None:
    site = cfg.get("Site", "Name")
    subject = f"site {site} is now {mode.upper()}"
    body = (f"Site {site} switched to {mode} mode.\nReason: {reason}\n\n"
            + ("This site's RADIUS now answers and charges into the delta database. "
               "Provisioning and configuration changes are refused here. When the primary "
               "is back: `vigil site failback` (automatic when [Watchdog] Auto_Failback)."
               if mode == "standalone" else
               "This site's RADIUS is silent again; the primary serves the gateways.")
            + "\n\nStatus: vigil site status")
    try:
        from vigil.alerts import send_alert

        send_alert(cfg, subject, body)
    except Exception as exc:  # an alert that cannot go out must not undo the switch
        log.warning("alert not sent (%s): %s", exc, subject)


def after_switch(cfg: Any, mode: str, reason: str) -> None:
    run_hook(cfg, mode, reason)
    alert(cfg, mode, reason)
