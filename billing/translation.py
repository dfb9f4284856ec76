"""Number translation rules in the source's Perl notation: ``s/^4412//``.

Several rules may be separated by ``;`` and are applied in order. Flags
``g`` and ``i`` are understood; ``$1`` in the replacement is a group.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from functools import lru_cache

_RULE = re.compile(r"s(.)(.*?)(?<!\\)\1(.*?)(?<!\\)\1([gi]*)$")


class TranslationError(ValueError):
    """A rule that does not parse."""


@lru_cache(maxsize=1024)
def compile_rules(rules: str) -> Callable[[str], str]:
    steps: list[tuple[re.Pattern[str], str, int]] = []
    for raw in (r.strip() for r in rules.split(";")):
        if not raw:
            continue
        m = _RULE.match(raw)
        if not m:
            raise TranslationError(f"{raw!r} is not a substitution like s/^00//")
        sep, pattern, repl, flags = m.groups()
        pattern = pattern.replace("\\" + sep, sep)
        repl = re.sub(r"\$(\d)", r"\\\1", repl.replace("\\" + sep, sep))
        try:
            rx = re.compile(pattern, re.IGNORECASE if "i" in flags else 0)
        except re.error as exc:
            raise TranslationError(f"{raw!r}: {exc}") from None
        steps.append((rx, repl, 0 if "g" in flags else 1))

    def apply(number: str) -> str:
        for rx, repl, count in steps:
            number = rx.sub(repl, number, count=count)
        return number

    return apply


def translate(rules: str, number: str) -> str:
    return compile_rules(rules)(number) if rules else number
