"""Fixtures: the real Debian ``nsca`` daemon and Vigil's own server, on loopback."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from nsca.commandfile import CommandFileSink
from nsca.server import CommandSink, ServerOptions, Sink
from nsca.testing import RealNSCA, VigilServer


@pytest.fixture
def real_nsca(tmp_path: Path) -> Iterator[Callable[..., RealNSCA]]:
    started: list[RealNSCA] = []

    def make(**kw: object) -> RealNSCA:
        n = RealNSCA(tmp_path / f"nsca{len(started)}", **kw)  # type: ignore[arg-type]
        started.append(n.start())
        return n

    yield make
    for n in started:
        n.stop()


@pytest.fixture
def vigil_server(tmp_path: Path) -> Iterator[Callable[..., tuple[VigilServer, Path]]]:
    started: list[VigilServer] = []

    def make(sink: Sink | None = None, **kw: object) -> tuple[VigilServer, Path]:
        out = tmp_path / f"vigil{len(started)}.cmd"
        out.touch()
        kw.setdefault("port", 0)
        srv = VigilServer(ServerOptions(**kw),  # type: ignore[arg-type]
                          sink or CommandSink(CommandFileSink(out)))
        started.append(srv)
        return srv, out

    yield make
    for s in started:
        s.stop()
