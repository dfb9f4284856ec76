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
    """``{name: (value, line number)}``; comments and blank lines skipped.

    Values are kept as the C programs read them: everything after the first
    ``=`` up to the newline, spaces and a CR included (``strtok(NULL, "\\n")``),
    so a password line means the same to Vigil and to C. Bytes that are not
    UTF-8 come back as the same bytes (surrogateescape). Names are stripped;
    :func:`get_str` and :func:`get_int` strip values that are not passwords.
    """
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise CfgError(f"Error: cannot read config file {path}: {exc.strerror}") from exc
    text = data.decode("utf-8", "surrogateescape")
    out: dict[str, tuple[str, int]] = {}
    for n, raw in enumerate(text.split("\n"), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        name, sep, value = raw.partition("=")
        if not sep:
            raise CfgError(f"Error: {path} line {n}: expected name=value, got {line[:60]!r}")
        # C's strtok skips the run of '=' after the name
        out[name.strip()] = (value.lstrip("="), n)
    return out


def get_password(cfg: dict[str, tuple[str, int]], name: str = "password") -> str:
    """The password exactly as the C programs read it (nothing stripped)."""
    return cfg[name][0] if name in cfg else ""


def get_bool(cfg: dict[str, tuple[str, int]], path: str | Path, name: str,
             default: bool) -> bool:
    """C's ``legacy_2_7_mode=yes`` (the only spelling send_nsca honours), and 1/0."""
    if name not in cfg:
        return default
    value, line = cfg[name][0].strip().lower(), cfg[name][1]
    if value in ("yes", "1", "true", "on"):
        return True
    if value in ("no", "0", "false", "off"):
        return False
    raise CfgError(f"Error: {path} line {line}: {name}={value!r}: use yes or no")


def get_int(cfg: dict[str, tuple[str, int]], path: str | Path, name: str, default: int,
            lo: int, hi: int) -> int:
    if name not in cfg:
        return default
    value, line = cfg[name][0].strip(), cfg[name][1]
    if not value.lstrip("-").isdigit() or not lo <= int(value) <= hi:
        raise CfgError(f"Error: {path} line {line}: {name}={value!r} is not a whole number "
                       f"in {lo}..{hi}")
    return int(value)


def get_str(cfg: dict[str, tuple[str, int]], name: str, default: str = "") -> str:
    return cfg[name][0].strip() if name in cfg else default
