"""Fixtures of the radcheck tests; the peers themselves are in radcheck_peers.py."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.radcheck.radcheck_peers import FreeRadius


@pytest.fixture
def freeradius(tmp_path: Path) -> Iterator[FreeRadius]:
    fr = FreeRadius(tmp_path / "raddb").start()
    yield fr
    fr.stop()
