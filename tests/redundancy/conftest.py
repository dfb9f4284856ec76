"""Fixtures of the replication tests (helpers in replication_pair.py)."""

from tests.redundancy.replication_pair import pair  # noqa: F401  (the fixture)
