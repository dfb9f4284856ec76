"""Nagios service states: the one enum every room uses (a leaf: imports nothing of Vigil).

A state is its exit code (what a plugin returns and an NSCA packet carries)
and its text (what the plugin line and Nagios show). :func:`worst` ranks
UNKNOWN between WARNING and CRITICAL, as Nagios does when it sorts problems:
a plugin that could not look is worse than a warning, but a target known to
be down is worse still. (nagiosplugin's ``worst`` takes the highest code,
which would let one plugin's own UNKNOWN hide a CRITICAL.)
"""

from __future__ import annotations

import enum

_SEVERITY = {0: 0, 1: 1, 3: 2, 2: 3}


class ServiceState(enum.IntEnum):
    OK = 0
    WARNING = 1
    CRITICAL = 2
    UNKNOWN = 3

    @property
    def code(self) -> int:
        return int(self.value)

    @property
    def text(self) -> str:
        return self.name

    @property
    def severity(self) -> int:
        """Rank for :func:`worst`: OK < WARNING < UNKNOWN < CRITICAL."""
        return _SEVERITY[self.value]

    @classmethod
    def from_code(cls, code: int) -> ServiceState:
        """The state of an exit code; ValueError for anything outside 0..3."""
        return cls(code)


def worst(*states: int) -> ServiceState:
    """The most serious of ``states`` (OK when given none)."""
    if not states:
        return ServiceState.OK
    return max((ServiceState(s) for s in states), key=lambda s: s.severity)
