"""Finding a process by its pidfile and reading what /proc says about it."""

from __future__ import annotations

import os
from pathlib import Path

from checks.plugin import PluginError, TargetDown


def pidfile_path(ctx: object, path: str) -> str:
    """A relative pidfile is inside ``[Site] State_Dir`` (where supervisord keeps its own)."""
    if Path(path).is_absolute():
        return path
    return str(ctx.site_state_dir() / path)  # type: ignore[attr-defined]


def pid_from_file(path: str) -> int:
    """The pid a pidfile names; a missing, empty or garbage pidfile means "not running"."""
    try:
        text = Path(path).read_text().strip()
    except FileNotFoundError:
        raise TargetDown(f"no pidfile {path}: not running") from None
    except OSError as exc:
        raise PluginError(f"cannot read {path}: {exc.strerror}") from None
    first = text.split()[0] if text else ""
    if not first.isdigit() or int(first) <= 0:
        raise TargetDown(f"pidfile {path} holds no pid ({text[:20]!r})")
    return int(first)


def uptime(pid: int) -> float | None:
    """Seconds since the process started."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        start_ticks = int(stat.rsplit(")", 1)[1].split()[19])
        with open("/proc/uptime") as fh:
            boot_uptime = float(fh.read().split()[0])
    except (OSError, ValueError, IndexError):
        return None
    return max(0.0, boot_uptime - start_ticks / os.sysconf("SC_CLK_TCK"))


def command_line(pid: int) -> str:
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return ""
    return raw.replace(b"\0", b" ").decode(errors="replace").strip()
