"""The one configuration file, ``etc/vigil.conf`` (INI).

Every option is declared once, with its section, converter, default and help
(see ``vigil.options``). Precedence: command line > environment > file >
default. A bad value stops the program with::

    Error: <file> [section] option: <why>

and exit code 2 (``ConfigError.exit_code``).

Section and option names follow the source system's ``porta-billing.conf``
where it has them, so an admin who knows the original recognises them.

Environment overrides are named ``VIGIL__<SECTION>__<OPTION>``, upper case,
every character that is not a letter or digit turned into ``_``; for example
``VIGIL__SELF_TEST__TIMEOUT_SEC=2``.
"""

from __future__ import annotations

import configparser
import logging
import os
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

CONF_ENV = "VIGIL_CONF"
DEFAULT_PATHS = (Path("/etc/vigil/vigil.conf"), Path("etc/vigil.conf"))


class ConfigError(Exception):
    """A configuration value that cannot be used; the message names where it is."""

    exit_code = 2

    def __init__(self, source: str, section: str, option: str, why: str) -> None:
        self.source = source
        self.section = section
        self.option = option
        self.why = why
        where = f"[{section}] {option}" if option else f"[{section}]"
        super().__init__(f"Error: {source} {where}: {why}")


class Secret:
    """A password or shared secret: never shown by ``str``, ``repr`` or a log line."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __bool__(self) -> bool:
        return bool(self._value)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)

    def __repr__(self) -> str:
        return "Secret('********')"

    __str__ = __repr__


Converter = Callable[[str], Any]


@dataclass(frozen=True)
class Option:
    section: str
    name: str
    convert: Converter
    default: str | None
    help: str
    secret: bool = False

    @property
    def env_name(self) -> str:
        return env_name(self.section, self.name)


def env_name(section: str, name: str) -> str:
    def norm(s: str) -> str:
        return re.sub(r"[^A-Za-z0-9]", "_", s).upper()

    return f"VIGIL__{norm(section)}__{norm(name)}"


_REGISTRY: dict[tuple[str, str], Option] = {}


def declare(
    section: str,
    name: str,
    convert: Converter,
    default: str | None,
    help: str,
    *,
    secret: bool = False,
) -> Option:
    """Declare an option once; modules call this at import time.

    ``default`` is written as it would be in the file (a string) so that the
    same converter validates defaults and file values alike. ``None`` means
    the option is required.
    """
    key = (section.lower(), name.lower())
    opt = Option(section, name, convert, default, help, secret)
    existing = _REGISTRY.get(key)
    if existing is not None and existing != opt:
        raise RuntimeError(f"option [{section}] {name} declared twice differently")
    _REGISTRY[key] = opt
    return opt


def declared() -> list[Option]:
    return sorted(_REGISTRY.values(), key=lambda o: (o.section.lower(), o.name.lower()))


def _lookup(section: str, name: str) -> Option:
    try:
        return _REGISTRY[(section.lower(), name.lower())]
    except KeyError:
        raise KeyError(f"option [{section}] {name} is not declared") from None


class Config:
    """Validated configuration: every declared option converted once at load."""

    def __init__(self, source: str, values: Mapping[tuple[str, str], Any],
                 raw: configparser.ConfigParser) -> None:
        self.source = source
        self._values = dict(values)
        self.raw = raw

    def get(self, section: str, name: str) -> Any:
        opt = _lookup(section, name)
        key = (opt.section.lower(), opt.name.lower())
        if key not in self._values:
            # declared after this Config was loaded (a module imported late):
            # convert it now so the same rules apply.
            self._values[key] = _resolve(opt, self.raw, self.source, {})
        return self._values[key]

    def section(self, section: str) -> dict[str, Any]:
        return {o.name: self.get(o.section, o.name) for o in declared()
                if o.section.lower() == section.lower()}

    def path(self, section: str, name: str) -> Path:
        """A path option, relative paths taken from the config file's folder."""
        value = Path(self.get(section, name))
        if value.is_absolute() or self.source.startswith("<"):
            return value
        return (Path(self.source).resolve().parent / value).resolve()


def _resolve(opt: Option, parser: configparser.ConfigParser, source: str,
             overrides: Mapping[tuple[str, str], str]) -> Any:
    key = (opt.section.lower(), opt.name.lower())
    where = source
    if key in overrides:
        text, where = overrides[key], "command line"
    elif opt.env_name in os.environ:
        text, where = os.environ[opt.env_name], f"environment {opt.env_name}"
    elif parser.has_option(_section_name(parser, opt.section), opt.name):
        text = parser.get(_section_name(parser, opt.section), opt.name)
    elif opt.default is not None:
        text, where = opt.default, "default"
    else:
        raise ConfigError(source, opt.section, opt.name, "is required and not set")
    try:
        return opt.convert(text.strip())
    except ValueError as exc:
        raise ConfigError(where, opt.section, opt.name, str(exc)) from None


def _section_name(parser: configparser.ConfigParser, section: str) -> str:
    for s in parser.sections():
        if s.lower() == section.lower():
            return s
    return section


def find_config_file(explicit: str | None = None) -> Path | None:
    if explicit:
        return Path(explicit)
    env = os.environ.get(CONF_ENV)
    if env:
        return Path(env)
    for p in DEFAULT_PATHS:
        if p.exists():
            return p
    return None


def load(path: str | os.PathLike[str] | None = None,
         overrides: Mapping[tuple[str, str], str] | None = None,
         sections: Iterable[str] | None = None) -> Config:
    """Read and validate the configuration.

    ``path`` None means: ``VIGIL_CONF``, then ``/etc/vigil/vigil.conf``, then
    ``etc/vigil.conf`` below the current folder; none of them is fine (all
    defaults). ``sections`` limits validation to those sections (a tool that
    needs only ``[Replication]`` should not fail on a typo in ``[NSCA]``).
    """
    # Import the modules that declare options so that every option is known.
    from vigil import options  # noqa: F401

    found = find_config_file(str(path) if path is not None else None)
    parser = configparser.ConfigParser(interpolation=None, strict=True)
    parser.optionxform = str  # type: ignore[assignment,method-assign]  # keep option case
    source = "<defaults>"
    if found is not None:
        source = str(found)
        try:
            with open(found, encoding="utf-8") as fh:
                parser.read_file(fh, source=source)
        except FileNotFoundError:
            raise ConfigError(source, "-", "", "file not found") from None
        except configparser.Error as exc:
            msg = str(exc).splitlines()[0]
            raise ConfigError(source, "-", "", f"not a valid INI file: {msg}") from None
    overrides = {(s.lower(), o.lower()): v for (s, o), v in (overrides or {}).items()}
    wanted = {s.lower() for s in sections} if sections is not None else None
    values: dict[tuple[str, str], Any] = {}
    for opt in declared():
        if wanted is not None and opt.section.lower() not in wanted:
            continue
        values[(opt.section.lower(), opt.name.lower())] = _resolve(opt, parser, source, overrides)
    known_sections = {o.section.lower() for o in declared()}
    for s in parser.sections():
        if s.lower() not in known_sections:
            log.warning("config %s: section [%s] is not used by Vigil", source, s)
            continue
        for name in parser.options(s):
            if (s.lower(), name.lower()) not in _REGISTRY:
                log.warning("config %s: [%s] %s is not used by Vigil", source, s, name)
    return Config(source, values, parser)


# ---------------------------------------------------------------- converters
# Small pure functions: each raises ValueError saying what is allowed.

_TRUE = {"1", "yes", "true", "on"}
_FALSE = {"0", "no", "false", "off"}


def boolean(text: str) -> bool:
    low = text.lower()
    if low in _TRUE:
        return True
    if low in _FALSE:
        return False
    raise ValueError(f"{text!r} is not a boolean; use Yes or No")


def integer(lo: int | None = None, hi: int | None = None) -> Converter:
    def convert(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise ValueError(f"{text!r} is not a whole number") from None
        if lo is not None and value < lo:
            raise ValueError(f"{value} is below the minimum {lo}")
        if hi is not None and value > hi:
            raise ValueError(f"{value} is above the maximum {hi}")
        return value

    return convert


def number(lo: float | None = None, hi: float | None = None) -> Converter:
    def convert(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise ValueError(f"{text!r} is not a number") from None
        if value != value:  # NaN
            raise ValueError(f"{text!r} is not a number")
        if lo is not None and value < lo:
            raise ValueError(f"{value:g} is below the minimum {lo:g}")
        if hi is not None and value > hi:
            raise ValueError(f"{value:g} is above the maximum {hi:g}")
        return value

    return convert


port = integer(1, 65535)


def choice(*allowed: str) -> Converter:
    def convert(text: str) -> str:
        for a in allowed:
            if text.lower() == a.lower():
                return a
        raise ValueError(f"{text!r} is not one of: {', '.join(allowed)}")

    return convert


def text(text: str) -> str:
    return text


def nonempty(text: str) -> str:
    if not text:
        raise ValueError("must not be empty")
    return text


def secret(text: str) -> Secret:
    return Secret(text)


_EMAIL = re.compile(r"^[^@\s,]+@[^@\s,]+\.[^@\s,]+$")


def email(text: str) -> str:
    # The source insists on fully qualified addresses: a local alias silently
    # lands nowhere on an appliance with no local mail delivery.
    if not _EMAIL.match(text):
        raise ValueError(f"{text!r} is not a fully qualified e-mail address (user@domain.tld)")
    return text


def email_list(text: str) -> list[str]:
    items = [t.strip() for t in text.split(",") if t.strip()]
    return [email(t) for t in items]


def ip_address(text: str) -> str:
    import ipaddress

    try:
        return str(ipaddress.ip_address(text))
    except ValueError:
        raise ValueError(f"{text!r} is not an IP address") from None


def host(text: str) -> str:
    if not text or not re.match(r"^[A-Za-z0-9_.:\-\[\]]+$", text):
        raise ValueError(f"{text!r} is not a host name or address")
    return text


def db_url(text: str) -> str:
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        url = make_url(text)
    except ArgumentError:
        raise ValueError(f"{text!r} is not an SQLAlchemy URL "
                         "(sqlite:///path or mysql+pymysql://user@host/db)") from None
    if url.get_backend_name() not in ("sqlite", "mysql", "mariadb"):
        raise ValueError(f"database {url.get_backend_name()!r} is not supported; "
                         "use sqlite or mysql+pymysql")
    if url.password:
        raise ValueError("put the password in the Password option, not in the URL "
                         "(URLs end up in logs and process lists)")
    return text


def path(text: str) -> str:
    if not text:
        raise ValueError("must be a path")
    if "\0" in text:
        raise ValueError("a path cannot contain NUL")
    return text


def regex(text: str) -> str:
    try:
        re.compile(text)
    except re.error as exc:
        raise ValueError(f"{text!r} is not a regular expression: {exc}") from None
    return text
