"""``vigil-check``: run any plugin by name, or list them.

    vigil-check --list
    vigil-check NAME [plugin options]      (vigil-check NAME --help)
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Sequence

from checks import PLUGINS
from checks.plugin import UNKNOWN, Plugin, format_line, run


def plugin_class(name: str) -> type[Plugin]:
    """The plugin class of ``name``; KeyError if there is no such plugin."""
    if name not in PLUGINS:
        raise KeyError(name)
    module = importlib.import_module(f"checks.{name}")
    cls: type[Plugin] = module.PLUGIN
    return cls


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
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
    name = args[0]
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
    return run(cls(), args[1:])


if __name__ == "__main__":
    sys.exit(main())
