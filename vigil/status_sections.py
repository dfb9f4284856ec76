"""Sections a room adds to `vigil status` (a leaf module: imports nothing).

The core must not import the rooms, yet `vigil status` should show what
only a room knows (the billing engines on every server of the cluster). A
room's ``register()`` (called by the `vigil` dispatcher) hands a function
here; ``cmd_status`` calls each and prints what it returns.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

# A section: (title, lines for people, data for --json); raising means "unavailable".
Section = Callable[[Any], tuple[str, list[str], Any]]

SECTIONS: list[Section] = []


def add(section: Section) -> None:
    if section not in SECTIONS:
        SECTIONS.append(section)
