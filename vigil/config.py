"""The one configuration file, ``etc/vigil.conf`` (INI).

Every option is declared once, with its section, converter, default and help:
the core's sections in ``vigil.options``, each room's in its ``settings``
module, the declaration type and converters in the leaf ``vigil.datatypes``.
The registry is built explicitly from the modules named in ``SETTINGS_MODULES``
(``default_registry``); importing a module declares nothing.

Precedence: command line > environment > file > default. A bad value, an
unknown section or option (with a suggestion), a broken cross-option rule or
an unreadable file stops the program with::

    Error: <file> [section] option: <why>
    Error: <file>: <why>

and exit code 2 (``ConfigError.exit_code``). Nothing else comes out of
``load``: a file of any bytes gives a ``Config`` or a ``ConfigError``.

Section and option names follow the source system's ``porta-billing.conf``
where it has them, so an admin who knows the original recognises them.

Environment overrides are named ``VIGIL__<SECTION>__<OPTION>``, upper case,
every character that is not a letter or digit turned into ``_``; for example
``VIGIL__SELF_TEST__TIMEOUT_SEC=2``.
"""

from __future__ import annotations

import configparser
import difflib
import functools
import importlib
import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from vigil.datatypes import (  # re-exported (__all__): rooms import converters from here
    Converter,
    Declarations,
    Option,
    Rule,
    Secret,
    boolean,
    choice,
    db_url,
    email,
    email_list,
    env_name,
    host,
    integer,
    ip_address,
    nonempty,
    number,
    path,
    port,
    regex,
    secret,
    text,
)

__all__ = [
    "CONF_ENV", "DEFAULT_PATHS", "SETTINGS_MODULES", "Config", "ConfigError", "Converter",
    "Declarations", "Option", "Registry", "Rule", "Secret", "boolean", "check_names",
    "check_rules", "choice", "db_url", "declared", "default_registry", "email", "email_list",
    "env_name", "find_config_file", "host", "integer", "ip_address", "load", "lookup",
    "nonempty", "number", "parse", "path", "port", "read_text", "regex", "secret", "text",
]

CONF_ENV = "VIGIL_CONF"
DEFAULT_PATHS = (Path("/etc/vigil/vigil.conf"), Path("etc/vigil.conf"))

# Where the options are declared: the core first, then each room's settings.
# Named, not imported, so the core depends on no room's code; a room that is
# not installed is skipped.
SETTINGS_MODULES = (
    "vigil.options",
    "radcheck.settings",
    "billing.settings",
    "nsca.settings",
    "monitor.settings",
    "checks.settings",
    "redundancy.settings",
    "redundancy.site.settings",
)

# configparser's [DEFAULT] would copy its options into every section, where
# they would all be unknown; with this name [DEFAULT] is an ordinary section.
_NO_DEFAULT_SECTION = "\0no default section"


class ConfigError(Exception):
    """A configuration value that cannot be used; the message names where it is."""

    exit_code = 2

    def __init__(self, source: str, section: str, option: str, why: str) -> None:
        self.source = source
        self.section = section
        self.option = option
        self.why = why
        where = f" [{section}]" if section else ""
        if section and option:
            where += f" {option}"
        super().__init__(f"Error: {source}{where}: {why}")


class Registry:
    """Every declared option and cross-option rule, looked up without regard to case."""

    def __init__(self, declarations: Iterable[Declarations]) -> None:
        self._options: dict[tuple[str, str], Option] = {}
        self.rules: list[Rule] = []
        for decl in declarations:
            for opt in decl.options:
                existing = self._options.get(opt.key)
                if existing is not None and existing != opt:
                    raise RuntimeError(
                        f"option [{opt.section}] {opt.name} declared twice differently")
                self._options[opt.key] = opt
            self.rules.extend(decl.rules)
        self._sections = {o.section.lower(): o.section for o in self._options.values()}

    def options(self) -> list[Option]:
        return sorted(self._options.values(), key=lambda o: (o.section.lower(), o.name.lower()))

    def lookup(self, section: str, name: str) -> Option:
        try:
            return self._options[(section.lower(), name.lower())]
        except KeyError:
            raise KeyError(f"option [{section}] {name} is not declared") from None

    def has(self, section: str, name: str) -> bool:
        return (section.lower(), name.lower()) in self._options

    def has_section(self, section: str) -> bool:
        return section.lower() in self._sections

    def suggest_section(self, section: str) -> str | None:
        return _closest(section, self._sections.values())

    def suggest_option(self, section: str, name: str) -> str | None:
        names = [o.name for o in self._options.values() if o.section.lower() == section.lower()]
        return _closest(name, names)


def _closest(word: str, candidates: Iterable[str]) -> str | None:
    by_lower = {c.lower(): c for c in candidates}
    found = difflib.get_close_matches(word.lower(), list(by_lower), n=1, cutoff=0.75)
    return by_lower[found[0]] if found else None


@functools.cache
def default_registry() -> Registry:
    """The registry of every installed room, built once from ``SETTINGS_MODULES``."""
    decls: list[Declarations] = []
    for name in SETTINGS_MODULES:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name is None or not (name == exc.name or name.startswith(exc.name + ".")):
                raise  # the room is there but something it imports is missing
            continue
        decls.append(module.OPTIONS)
    return Registry(decls)


def declared() -> list[Option]:
    return default_registry().options()


def lookup(section: str, name: str) -> Option:
    return default_registry().lookup(section, name)


class Config:
    """Validated configuration: every declared option converted once at load."""

    def __init__(self, source: str, values: Mapping[tuple[str, str], Any],
                 raw: configparser.ConfigParser, registry: Registry | None = None) -> None:
        self.source = source
        self._values = dict(values)
        self.raw = raw
        self.registry = registry if registry is not None else default_registry()

    def get(self, section: str, name: str) -> Any:
        opt = self.registry.lookup(section, name)
        if opt.key not in self._values:
            # a section left out by load(sections=...): converted now by the same rules
            self._values[opt.key] = _resolve(opt, self.raw, self.source, {})
        return self._values[opt.key]

    def section(self, section: str) -> dict[str, Any]:
        return {o.name: self.get(o.section, o.name) for o in self.registry.options()
                if o.section.lower() == section.lower()}

    def path(self, section: str, name: str) -> Path:
        """A path option, relative paths taken from the config file's folder."""
        value = Path(self.get(section, name))
        if value.is_absolute() or self.source.startswith("<"):
            return value
        return (Path(self.source).resolve().parent / value).resolve()

    def state_file(self, section: str, name: str, default_name: str) -> Path:
        """A state-file option: its value (relative to the config file) or State_Dir/name."""
        if self.get(section, name):
            return self.path(section, name)
        return self.path("Site", "State_Dir") / default_name


def _resolve(opt: Option, parser: configparser.ConfigParser, source: str,
             overrides: Mapping[tuple[str, str], str]) -> Any:
    where = source
    if opt.key in overrides:
        text, where = overrides[opt.key], "command line"
    elif opt.env_name in os.environ:
        text, where = os.environ[opt.env_name], f"environment {opt.env_name}"
    elif (written := _option_name(parser, opt)) is not None:
        text = parser.get(_section_name(parser, opt.section), written)
    elif opt.default is not None:
        text, where = opt.default, "default"
    else:
        raise ConfigError(source, opt.section, opt.name, "is required and not set")
    try:
        return opt.convert(text.strip())
    except ValueError as exc:
        raise ConfigError(where, opt.section, opt.name, str(exc)) from None


def _option_name(parser: configparser.ConfigParser, opt: Option) -> str | None:
    """The option's name as the file writes it (any case), or None if it is not set."""
    section = _section_name(parser, opt.section)
    if not parser.has_section(section):
        return None
    for name in parser.options(section):
        if name.lower() == opt.name.lower():
            return name
    return None


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


def read_text(file: Path) -> str:
    """The file's text, or ConfigError saying why it cannot be had (no OSError escapes)."""
    source = str(file)
    try:
        data = file.read_bytes()
    except FileNotFoundError:
        raise ConfigError(source, "", "", "file not found") from None
    except IsADirectoryError:
        raise ConfigError(source, "", "", "is a directory, not a configuration file") from None
    except PermissionError:
        raise ConfigError(source, "", "", "cannot be read: permission denied") from None
    except OSError as exc:
        raise ConfigError(source, "", "", f"cannot be read: {exc.strerror or exc}") from None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise ConfigError(source, "", "", f"not UTF-8 text (byte 0x{data[exc.start]:02x} "
                                          f"on line {line})") from None


def parse(ini_text: str, source: str) -> configparser.ConfigParser:
    """INI text into a parser that keeps option case; ConfigError if it is not INI."""
    parser = configparser.ConfigParser(interpolation=None, strict=True,
                                       default_section=_NO_DEFAULT_SECTION)
    parser.optionxform = str  # type: ignore[assignment,method-assign]  # keep option case
    try:
        parser.read_string(ini_text, source=source)
    except configparser.Error as exc:
        msg = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise ConfigError(source, "", "", f"not a valid INI file: {msg}") from None
    return parser


def check_names(parser: configparser.ConfigParser, source: str, registry: Registry,
                wanted: set[str] | None = None) -> None:
    """Unknown sections and options are errors, with the closest declared name."""
    seen: set[str] = set()
    for s in parser.sections():
        if s.lower() in seen:  # configparser's strict mode compares case-sensitively
            raise ConfigError(source, s, "", "section written twice (names ignore case)")
        seen.add(s.lower())
        if not registry.has_section(s):
            hint = registry.suggest_section(s)
            why = "unknown section" + (f"; did you mean [{hint}]?" if hint else "")
            raise ConfigError(source, s, "", why)
        if wanted is not None and s.lower() not in wanted:
            continue
        names: set[str] = set()
        for name in parser.options(s):
            if name.lower() in names:
                raise ConfigError(source, s, name, "set twice (names ignore case)")
            names.add(name.lower())
            if not registry.has(s, name):
                hint = registry.suggest_option(s, name)
                why = "unknown option" + (f"; did you mean {hint}?" if hint else "")
                raise ConfigError(source, s, name, why)


def check_rules(values: Mapping[tuple[str, str], Any], source: str, registry: Registry,
                wanted: set[str] | None = None) -> None:
    for rule in registry.rules:
        if wanted is not None and not all(s.lower() in wanted for s in rule.sections):
            continue
        broken = rule.check(values)
        if broken is not None:
            section, option, why = broken
            raise ConfigError(source, section, option, why)


def load(path: str | os.PathLike[str] | None = None,  # noqa: F811  (the converter's name)
         overrides: Mapping[tuple[str, str], str] | None = None,
         sections: Iterable[str] | None = None,
         registry: Registry | None = None) -> Config:
    """Read and validate the configuration.

    ``path`` None means: ``VIGIL_CONF``, then ``/etc/vigil/vigil.conf``, then
    ``etc/vigil.conf`` below the current folder; none of them is fine (all
    defaults). ``sections`` limits validation to those sections (a tool that
    needs only ``[Replication]`` should not fail on a typo in ``[NSCA]``;
    an unknown section is refused whatever is asked).
    """
    registry = registry if registry is not None else default_registry()
    found = find_config_file(str(path) if path is not None else None)
    source = "<defaults>"
    parser = parse("", source)
    if found is not None:
        source = str(found)
        parser = parse(read_text(found), source)
    overrides = {(s.lower(), o.lower()): v for (s, o), v in (overrides or {}).items()}
    wanted = {s.lower() for s in sections} if sections is not None else None
    check_names(parser, source, registry, wanted)
    values: dict[tuple[str, str], Any] = {}
    for opt in registry.options():
        if wanted is not None and opt.section.lower() not in wanted:
            continue
        values[opt.key] = _resolve(opt, parser, source, overrides)
    check_rules(values, source, registry, wanted)
    return Config(source, values, parser, registry)
