"""A pytest plugin: the test session's processes are tagged, reaped and checked.

Loaded with ``-p vigil.testing.session`` (pyproject's addopts). A test whose
fixture or body needs a Debian program that is not installed is skipped with
the package to install (vigil.testing.binaries), not reported as an error. At
start it tags the environment and starts the reaper (``vigil.testing.reaper``),
so a killed run leaves nothing behind. At the end of a run that was not killed it
checks that every process the tests started has ended: a server a fixture
forgot to stop fails the run, listed by pid and command line.
"""

from __future__ import annotations

import subprocess
from collections.abc import Generator

import pytest

from vigil.testing import reaper
from vigil.testing.binaries import is_known_missing
from vigil.testing.wait import poll

_TOKEN = pytest.StashKey[str]()
_REAPER = pytest.StashKey[subprocess.Popen[bytes]]()


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addini("vigil_leftover_grace", "seconds a process started by a test may take to "
                  "exit after the session before it counts as left behind", default="10")


def pytest_configure(config: pytest.Config) -> None:
    if hasattr(config, "workerinput"):  # a pytest-xdist worker: its controller tags and reaps
        return
    token = reaper.new_token()
    reaper.tag_environment(token)
    config.stash[_TOKEN] = token
    config.stash[_REAPER] = reaper.start_reaper(token)


def _skip_if_not_installed(exc: Exception) -> None:
    why = is_known_missing(exc)
    if why is None:
        raise exc
    pytest.skip(why)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_setup(item: pytest.Item) -> Generator[None, None, None]:
    """A fixture that needs a program this machine lacks: the test is skipped, naming it."""
    try:
        return (yield)
    except Exception as exc:
        _skip_if_not_installed(exc)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Generator[None, None, None]:
    try:
        return (yield)
    except Exception as exc:
        _skip_if_not_installed(exc)


@pytest.hookimpl(trylast=True)
def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    config = session.config
    token = config.stash.get(_TOKEN, None)
    if token is None:
        return
    reaper_proc = config.stash[_REAPER]
    mine = {reaper_proc.pid}
    grace = float(config.getini("vigil_leftover_grace"))
    if poll(lambda: not reaper.tagged(token, mine), grace, 0.1):
        return  # clean: everything the tests started has ended
    leftovers = reaper.kill_tagged(token, exclude=mine)
    if not leftovers:
        return
    tr = config.pluginmanager.get_plugin("terminalreporter")
    lines = [f"  {pid} {cmd[:160]}" for pid, cmd in sorted(leftovers.items())]
    msg = ("processes started by the tests were still running after the session "
           f"({grace:g}s grace); killed:\n" + "\n".join(lines))
    if tr is not None:
        tr.write_sep("=", "leftover processes", red=True)
        tr.write_line(msg)
    if session.exitstatus == pytest.ExitCode.OK:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED

