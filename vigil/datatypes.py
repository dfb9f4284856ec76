"""Option declarations and their converters: a leaf module.

It imports nothing of the project (like supervisor's ``datatypes.py``), so the
loader (``vigil.config``), the core's declarations (``vigil.options``) and every
room's ``settings`` module can import it without forming a circle.

A converter is a small pure function from the text written in the file to the
value the program uses; it raises ``ValueError`` saying what is allowed, and
the loader adds the file, section and option. A room declares its options in a
``Declarations`` list named ``OPTIONS`` in its ``settings`` module; the loader
collects those lists explicitly (``vigil.config.default_registry``), so
importing a module never changes what is declared.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

Converter = Callable[[str], Any]


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


def env_name(section: str, name: str) -> str:
    """``VIGIL__<SECTION>__<OPTION>``: upper case, anything not alphanumeric as ``_``."""

    def norm(s: str) -> str:
        return re.sub(r"[^A-Za-z0-9]", "_", s).upper()

    return f"VIGIL__{norm(section)}__{norm(name)}"


@dataclass(frozen=True)
class Option:
    """One option: where it lives, how its text becomes a value, its default and help.

    ``default`` is written as it would be in the file, so one converter checks
    defaults and file values alike; ``None`` means the option is required.
    """

    section: str
    name: str
    convert: Converter
    default: str | None
    help: str
    secret: bool = False

    @property
    def env_name(self) -> str:
        return env_name(self.section, self.name)

    @property
    def key(self) -> tuple[str, str]:
        return (self.section.lower(), self.name.lower())


# A rule across options: given the converted values of its sections
# ({(section, option) lower case: value}), it returns None when satisfied or
# (section, option, why) naming the option an admin should change.
RuleCheck = Callable[[Mapping[tuple[str, str], Any]], "tuple[str, str, str] | None"]


@dataclass(frozen=True)
class Rule:
    """A cross-option rule, checked only when every section it reads was loaded."""

    sections: tuple[str, ...]
    check: RuleCheck


class Declarations:
    """The options (and cross-option rules) one module declares, in order."""

    def __init__(self) -> None:
        self.options: list[Option] = []
        self.rules: list[Rule] = []

    def declare(self, section: str, name: str, convert: Converter, default: str | None,
                help: str, *, secret: bool = False) -> Option:
        opt = Option(section, name, convert, default, help, secret)
        self.options.append(opt)
        return opt

    def rule(self, *sections: str) -> Callable[[RuleCheck], RuleCheck]:
        """Decorator: register ``check`` as a rule over ``sections``."""

        def add(check: RuleCheck) -> RuleCheck:
            self.rules.append(Rule(tuple(sections), check))
            return check

        return add

    def __iter__(self) -> Iterator[Option]:
        return iter(self.options)


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
        # int() also takes "1_000" and non-ASCII digits; an admin means neither
        if not re.fullmatch(r"[+-]?[0-9]+", text):
            raise ValueError(f"{text!r} is not a whole number")
        try:
            value = int(text)
        except ValueError:  # more digits than Python converts
            raise ValueError(f"{text[:20]!r}... is not a usable whole number") from None
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
        if value != value or value in (float("inf"), float("-inf")):
            raise ValueError(f"{text!r} is not a finite number")
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
    try:
        return str(ipaddress.ip_address(text))
    except ValueError:
        raise ValueError(f"{text!r} is not an IP address") from None


def host(text: str) -> str:
    if not text or not re.match(r"^[A-Za-z0-9_.:\-\[\]]+$", text):
        raise ValueError(f"{text!r} is not a host name or address")
    return text


def db_url(text: str) -> str:
    # SQLAlchemy is imported here, not at the top, so this leaf stays cheap to import
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        url = make_url(text)
    except (ArgumentError, ValueError):
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
    except (re.error, RecursionError, OverflowError) as exc:
        raise ValueError(f"{text!r} is not a regular expression: {exc}") from None
    return text
