"""A reader that stops early (`| head`) ends a command quietly: exit 141, no traceback."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration  # the vigil commands, run into a closed pipe

BIN = Path(sys.executable).parent


@pytest.mark.parametrize("argv", [
    ["vigil", "config", "options"],
    ["vigil", "--help"],
    ["vigil-check", "--list"],
    ["vigil", "plugins", "list"],
])
def test_closed_pipe_is_not_a_traceback(argv: list[str]) -> None:
    # the reader closes at once (head -c 0 style): every write after that is EPIPE
    with subprocess.Popen([str(BIN / argv[0]), *argv[1:]], stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE) as proc:
        assert proc.stdout is not None and proc.stderr is not None
        proc.stdout.close()
        err = proc.stderr.read().decode()
        rc = proc.wait(timeout=60)
    assert "Traceback" not in err and "BrokenPipeError" not in err, err
    assert rc in (0, 141)  # 0 only if everything fitted the pipe before the reader left
