"""The plugin tests' fixtures live in checks_fixtures.py, so that test modules
can import its helpers by a name no other room's conftest.py shares."""

from tests.checks.checks_fixtures import *  # noqa: F403
