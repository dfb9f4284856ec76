"""What a plugin remembers between runs (counters, log offsets), one small JSON file each.

Files live in :meth:`Context.state_dir`, named after the plugin and a digest of
what it watches, so two instances of a plugin on different subjects never
share one. A corrupt file is reported once as UNKNOWN and replaced by an empty
one, so the next run starts a new baseline instead of trusting garbage.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

from checks.plugin import Context, PluginError


def state_path(ctx: Context, subject: str) -> Path:
    digest = hashlib.sha1(subject.encode(), usedforsecurity=False).hexdigest()[:12]
    return ctx.state_dir() / f"{ctx.plugin.name}.{digest}.json"


def load_state(ctx: Context, subject: str) -> dict[str, Any] | None:
    from vigil.statefile import CorruptStateError, read_json, write_json

    path = state_path(ctx, subject)
    try:
        data = read_json(path)
    except CorruptStateError as exc:
        _write(path, {}, write_json)
        raise PluginError(f"{exc}; replaced, the next run starts a new baseline") from None
    except OSError as exc:
        raise PluginError(f"cannot read state {path}: {exc.strerror}") from None
    return data if isinstance(data, dict) and data else None


def save_state(ctx: Context, subject: str, data: dict[str, Any]) -> None:
    from vigil.statefile import write_json

    _write(state_path(ctx, subject), data, write_json)


def _write(path: Path, data: dict[str, Any], write_json: Any) -> None:
    try:
        write_json(path, data)
    except OSError as exc:
        raise PluginError(f"cannot write state {path}: {exc.strerror}") from None
