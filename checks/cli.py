"""``vigil-check``: run any plugin by name, or list them.

    vigil-check --list
    vigil-check NAME [plugin options]      (vigil-check NAME --help)
    check_vigil_NAME [plugin options]      (the same program under another name)

Started as ``check_vigil_NAME`` (a symlink in the Monitoring Plugins folder,
see ``vigil plugins install``), the name picks the plugin, as a stock Nagios,
NRPE or Icinga command expects, and the settings come from the plugin
settings file: ``--config``, else ``$VIGIL_PLUGINS_CONF``, else ``$VIGIL_CONF``,
else ``/etc/vigil/plugins.conf`` when it exists (readable by the nagios
user, unlike the 0600 ``vigil.conf``).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from pathlib import Path

from checks import PLUGINS
from checks.plugin import UNKNOWN, format_line, plugin_class, run

PREFIX = "check_vigil_"


def _plugin_settings() -> None:
    """Point a ``check_vigil_*`` run at the plugin settings file (see the module doc)."""
    from checks.install import PLUGIN_CONF, PLUGIN_CONF_ENV
    from vigil.config import CONF_ENV

    chosen = os.environ.get(PLUGIN_CONF_ENV)
    if chosen:
        os.environ[CONF_ENV] = chosen
    elif not os.environ.get(CONF_ENV) and PLUGIN_CONF.exists():
        os.environ[CONF_ENV] = str(PLUGIN_CONF)


def main(argv: Sequence[str] | None = None, prog: str | None = None) -> int:
    from vigil.pipes import flush_stdout, stdout_closed

    try:
        rc = _main(argv, prog)
        flush_stdout()
    except BrokenPipeError:  # vigil-check --list | head
        return stdout_closed()
    return rc


def _main(argv: Sequence[str] | None, prog: str | None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    called = prog if prog is not None else Path(sys.argv[0]).name
    if called.startswith(PREFIX) and len(called) > len(PREFIX):
        _plugin_settings()
        return _run_named(called[len(PREFIX):], args, called)
    if not args or args[0] in ("-h", "--help"):
        print(__doc__.strip())
        print("plugins: " + ", ".join(PLUGINS))
        return UNKNOWN
    if args[0] in ("-l", "--list"):
        for name in PLUGINS:
            try:
                title = plugin_class(name).title
            except Exception as exc:  # a broken module must not hide the others
                title = f"(cannot load: {type(exc).__name__}: {exc})"
            print(f"{name:18} {title}")
        return 0
    if args[0] in ("-V", "--version"):
        from checks.plugin import VERSION

        print(f"vigil-check {VERSION}")
        return UNKNOWN
    return _run_named(args[0], args[1:], None)


def _run_named(name: str, args: list[str], prog: str | None) -> int:
    try:
        cls = plugin_class(name)
    except KeyError:
        print(format_line("VIGIL-CHECK", UNKNOWN,
                          f"no plugin named {name!r}; `vigil-check --list` shows them"))
        return UNKNOWN
    except Exception as exc:  # the plugin's module does not even import: still one line
        print(format_line(name.upper(), UNKNOWN,
                          f"cannot load plugin: {type(exc).__name__}: {exc}"))
        return UNKNOWN
    return run(cls(), args, prog=prog)


if __name__ == "__main__":
    sys.exit(main())
