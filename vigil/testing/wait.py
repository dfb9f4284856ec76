"""Polling with a deadline: how tests wait for another process or thread.

A fixed ``time.sleep`` either waits too long or not long enough on a shared,
noisy machine; ``wait_until`` returns as soon as the condition holds and
fails with a message naming what never happened.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


class WaitTimeout(AssertionError):
    """The condition did not hold before the deadline (an AssertionError, so a test fails)."""


def poll(predicate: Callable[[], T], timeout: float = 20.0, interval: float = 0.05) -> T | None:
    """The predicate's first truthy value, or its last (falsy) value at the deadline."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value or time.monotonic() >= deadline:
            return value if value else None
        time.sleep(interval)


def wait_until(predicate: Callable[[], T], timeout: float = 20.0, interval: float = 0.05,
               what: str = "") -> T:
    """The predicate's first truthy value; ``WaitTimeout`` when ``timeout`` seconds pass first."""
    value = poll(predicate, timeout, interval)
    if not value:
        name = what or getattr(predicate, "__name__", "condition")
        raise WaitTimeout(f"{name}: not true after {timeout:g}s")
    return value
