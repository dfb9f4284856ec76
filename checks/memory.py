"""Memory in use (total minus what the kernel says is available), in percent."""

from __future__ import annotations

import sys

from checks.perfdata import Perfdata
from checks.plugin import Context, Plugin, PluginError, Reading


def read_meminfo(path: str = "/proc/meminfo") -> dict[str, int]:
    """Fields of /proc/meminfo in bytes."""
    out: dict[str, int] = {}
    try:
        with open(path) as fh:
            for line in fh:
                key, _, rest = line.partition(":")
                parts = rest.split()
                if parts:
                    out[key] = int(parts[0]) * (1024 if parts[1:] == ["kB"] else 1)
    except (OSError, ValueError) as exc:
        raise PluginError(f"cannot read {path}: {exc}") from None
    return out


class Memory(Plugin):
    name = "memory"
    title = "Memory in use (MemTotal - MemAvailable)"
    label = "mem_used"
    uom = "%"
    warning = "90"
    critical = "95"
    remote = False

    def probe(self, ctx: Context) -> Reading:
        info = read_meminfo()
        try:
            total, avail = info["MemTotal"], info["MemAvailable"]
        except KeyError as exc:
            raise PluginError(f"/proc/meminfo has no {exc.args[0]}") from None
        pct = 100.0 * (total - avail) / total
        return Reading(round(pct, 2), f"{pct:.1f}% of {total / 2**30:.2f} GiB memory in use, "
                       f"{avail / 2**20:.0f} MiB available", min=0, max=100,
                       extra=[Perfdata("mem_available", avail, "B", min=0, max=total)])


PLUGIN = Memory

if __name__ == "__main__":
    sys.exit(Memory.main())
