"""Reading the C tools' ``nsca.cfg`` and ``send_nsca.cfg`` (``name=value`` lines)."""

from __future__ import annotations

from pathlib import Path

from nsca.errors import NSCAError

# Options of the C nsca that make no sense here (we never fork, chroot or
# change user: supervisor runs us) are accepted and ignored.
IGNORED = {"pid_file", "nsca_user", "nsca_group", "nsca_chroot", "log_facility",
           "aggregate_writes", "append_to_file", "check_result_path", "debug",
           "strict_mode_spoofing"}


class CfgError(NSCAError):
    exit_code = 2


def parse(path: str | Path) -> dict[str, tuple[str, int]]:
    """``{name: (value, line number)}``; comments and blank lines skipped."""
    try:
        text = Path(path).read_text(encoding="utf-8", errors="replace")
    except OSError as exc:
        raise CfgError(f"Error: cannot read config file {path}: {exc.strerror}") from exc
    out: dict[str, tuple[str, int]] = {}
    for n, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        name, sep, value = line.partition("=")
        if not sep:
            raise CfgError(f"Error: {path} line {n}: expected name=value, got {line[:60]!r}")
        out[name.strip()] = (value.strip(), n)
    return out


def get_int(cfg: dict[str, tuple[str, int]], path: str | Path, name: str, default: int,
            lo: int, hi: int) -> int:
    if name not in cfg:
        return default
    value, line = cfg[name]
    if not value.lstrip("-").isdigit() or not lo <= int(value) <= hi:
        raise CfgError(f"Error: {path} line {line}: {name}={value!r} is not a whole number "
                       f"in {lo}..{hi}")
    return int(value)


def get_str(cfg: dict[str, tuple[str, int]], name: str, default: str = "") -> str:
    return cfg[name][0] if name in cfg else default
