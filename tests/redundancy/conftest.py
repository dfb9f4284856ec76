"""Fixtures of the replication tests (helpers in replication_pair.py)."""

from replication_pair import pair  # noqa: F401  (the fixture)
