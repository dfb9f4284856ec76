"""The plugin pipeline: probe → reading → judge against ``-w``/``-c`` → one line.

A plugin is a subclass of :class:`Plugin` with a ``probe`` that returns one
:class:`Reading` (one indicator). :func:`run` does the rest, following the
Monitoring Plugins guidelines:

- exit 0/1/2/3; stdout gets exactly one line, ``SERVICE STATUS: text | perfdata``,
  at most :data:`MAX_LINE` bytes (what one NSCA packet carries);
- ``--help`` and ``-V`` exit 3; a bad argument or threshold prints one
  UNKNOWN line holding the short usage, and exits 3;
- the target not answering (:class:`TargetDown`, or ``-t`` expiring while the
  plugin waits on it) is CRITICAL; the plugin's own failure (a crash, a bad
  config, :class:`PluginError`, ``-t`` expiring in its own work) is UNKNOWN.

Judging goes through nagiosplugin's public pipeline (Resource → Metric →
ScalarContext → Result, run by ``Check()``); its Runtime is not used because it
prints tracebacks on several lines and turns every timeout into UNKNOWN. Our
own exceptions are not ``nagiosplugin.CheckError``, so ``Check()`` lets them
through to :func:`run`, which knows CRITICAL (target down) from UNKNOWN.
States are :class:`vigil.service_state.ServiceState`.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import signal
import sys
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, NoReturn

import nagiosplugin

from checks.perfdata import Perfdata, format_number
from checks.range import Range, parse_range, range_type
from vigil.service_state import ServiceState, worst

log = logging.getLogger(__name__)

# Short names for plugin modules; the enum members themselves.
OK, WARNING, CRITICAL, UNKNOWN = (ServiceState.OK, ServiceState.WARNING,
                                  ServiceState.CRITICAL, ServiceState.UNKNOWN)
MAX_LINE = 512      # an NSCA v3 packet carries 512 bytes of plugin output
MAX_TEXT = 240      # the human part, before perfdata
DEFAULT_TIMEOUT = 10.0
VERSION = "0.1.0"


class TargetDown(Exception):
    """The thing being checked did not answer, or answered wrong: CRITICAL."""


class PluginError(Exception):
    """The plugin cannot do its own job (bad configuration, unreadable input): UNKNOWN."""


class PluginTimeout(BaseException):
    """Raised by the ``-t`` alarm; a BaseException so library ``except Exception`` blocks
    cannot swallow it."""


@dataclass
class Reading:
    """What a probe measured: the one judged value and how to say it."""

    value: float
    text: str
    min: float | None = None
    max: float | None = None
    # A state the probe already knows (a stopped replication thread is CRITICAL
    # whatever the lag says); the result is the worse of this and the thresholds.
    state: ServiceState = OK
    judge: bool = True      # False: too little data to judge (a quiet night), OK regardless
    extra: Sequence[Perfdata] = field(default_factory=tuple)
    perf: bool = True       # False: the value means nothing to a grapher (no data yet)


class Plugin:
    """One indicator. Subclasses set the class attributes and write ``probe``."""

    name: ClassVar[str]
    title: ClassVar[str]            # one line for --help, --list and the runbook
    label: ClassVar[str]            # perfdata label of the judged value
    uom: ClassVar[str] = ""
    warning: ClassVar[str] = ""     # default -w
    critical: ClassVar[str] = ""    # default -c
    # True: a timeout while probing means the target did not answer (CRITICAL).
    # False: the probe only reads local files, so a timeout is the plugin's own hang.
    remote: ClassVar[bool] = True
    default_timeout: ClassVar[float] = DEFAULT_TIMEOUT

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        """Plugin-specific options."""

    def probe(self, ctx: Context) -> Reading:
        raise NotImplementedError

    @classmethod
    def main(cls, argv: Sequence[str] | None = None) -> int:
        return run(cls(), list(sys.argv[1:] if argv is None else argv))


# The last configuration read, by file identity and environment overrides. In a
# command-line run it serves nobody; in the scheduler's plugin worker it is
# filled before the fork, so a check does not parse an unchanged file again.
_LOADED: dict[tuple[Any, ...], Any] = {}


def _config_key(explicit: str | None) -> tuple[Any, ...] | None:
    from vigil.config import find_config_file

    try:
        found = find_config_file(explicit)
        if found is None:
            return None
        st = os.stat(found)
    except OSError:
        return None
    overrides = tuple(sorted((k, v) for k, v in os.environ.items() if k.startswith("VIGIL__")))
    return (os.getcwd(), str(found), st.st_dev, st.st_ino, st.st_mtime_ns, st.st_size,
            overrides)


# ------------------------------------------------------------------ context
class Context:
    """What a probe may use: its arguments, the config, the clock, its state folder."""

    def __init__(self, plugin: Plugin, args: argparse.Namespace) -> None:
        self.plugin = plugin
        self.args = args
        self.started = time.monotonic()
        self._cfg: Any = None

    def remaining(self, cap: float | None = None) -> float:
        """Seconds left before ``-t`` fires (a little less), optionally capped."""
        left = max(0.05, self.args.timeout - (time.monotonic() - self.started) - 0.1)
        return min(left, cap) if cap is not None else left

    def config(self) -> Any:
        """The validated ``vigil.conf``; options are converted when first read."""
        if self._cfg is None:
            from vigil.config import ConfigError, load

            key = _config_key(self.args.config)
            cached = _LOADED.get(key) if key is not None else None
            if cached is not None:
                self._cfg = cached
                return cached
            try:
                self._cfg = load(self.args.config, sections=())
            except ConfigError as exc:
                raise PluginError(str(exc)) from None
            if key is not None:
                _LOADED.clear()
                _LOADED[key] = self._cfg
        return self._cfg


    def option(self, section: str, name: str, default: Any = None) -> Any:
        """A config option; ``default`` when the room that declares it is not installed."""
        from vigil.config import ConfigError

        try:
            return self.config().get(section, name)
        except KeyError:
            return default
        except ConfigError as exc:
            raise PluginError(str(exc)) from None

    def site_state_dir(self) -> Path:
        cfg = self.config()
        try:
            return cfg.path("Site", "State_Dir")
        except Exception as exc:  # ConfigError
            raise PluginError(str(exc)) from None

    def state_dir(self) -> Path:
        """Where plugins keep counters and offsets between runs."""
        if self.args.state_dir:
            return Path(self.args.state_dir)
        configured = self.option("Checks", "State_Dir", "")
        if configured:
            return self.config().path("Checks", "State_Dir")
        return self.site_state_dir() / "checks"


# ------------------------------------------------------------- arguments
class UsageError(Exception):
    pass


class _HelpRequested(Exception):
    pass


class PluginArgumentParser(argparse.ArgumentParser):
    """argparse that exits 3 (the guidelines' UNKNOWN) on errors, --help and -V."""

    def error(self, message: str) -> NoReturn:
        raise UsageError(message)

    def exit(self, status: int = 0, message: str | None = None) -> NoReturn:
        if message:
            sys.stderr.write(message)
        raise _HelpRequested()


def anchor(name: str) -> str:
    """The runbook anchor of a plugin in docs/checks.md (Nagios notes_url links to it)."""
    return f"check-{name}"


# Parsers by (plugin class, program name). parse_args never changes a parser, so
# one built in the scheduler's plugin worker serves every forked check (fewer
# objects made per check, fewer pages copied).
_PARSERS: dict[tuple[type, str | None], PluginArgumentParser] = {}


def build_parser(plugin: Plugin, prog: str | None = None) -> PluginArgumentParser:
    key = (type(plugin), prog)
    parser = _PARSERS.get(key)
    if parser is None:
        parser = _PARSERS[key] = _new_parser(plugin, prog)
    return parser


def _new_parser(plugin: Plugin, prog: str | None) -> PluginArgumentParser:
    p = PluginArgumentParser(
        prog=prog or f"vigil-check {plugin.name}",
        description=f"{plugin.title}. Runbook: docs/checks.md#{anchor(plugin.name)}",
        epilog="Ranges: [@][start:][end]; alert when outside (inside with @): "
               "10 = outside 0..10, 10: = below 10, ~:10 = above 10, @10:20 = within 10..20. "
               "Exit 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN.",
    )
    p.add_argument("-V", "--version", action="version",
                   version=f"{prog or 'vigil-check ' + plugin.name} {VERSION}")
    p.add_argument("-w", "--warning", type=range_type, default=parse_range(plugin.warning),
                   metavar="RANGE", help=f"warning range for {plugin.label}"
                   + (f" (default {plugin.warning})" if plugin.warning else ""))
    p.add_argument("-c", "--critical", type=range_type, default=parse_range(plugin.critical),
                   metavar="RANGE", help=f"critical range for {plugin.label}"
                   + (f" (default {plugin.critical})" if plugin.critical else ""))
    p.add_argument("-t", "--timeout", type=_timeout_type, default=plugin.default_timeout,
                   metavar="SEC", help=f"give up after SEC seconds "
                   f"(default {format_number(plugin.default_timeout)})")
    p.add_argument("-v", "--verbose", action="count", default=0,
                   help="log details to stderr (stdout stays one line)")
    p.add_argument("--config", metavar="FILE",
                   help="vigil.conf (default: $VIGIL_CONF, /etc/vigil/vigil.conf, "
                        "./etc/vigil.conf)")
    p.add_argument("--state-dir", metavar="DIR",
                   help="where counters and offsets are kept between runs "
                        "(default [Checks] State_Dir, else <[Site] State_Dir>/checks)")
    plugin.add_arguments(p)
    return p


def _timeout_type(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"timeout {text!r} is not a number of seconds") from None
    if not 0 < value <= 3600:
        raise argparse.ArgumentTypeError(f"timeout {text!r} must be between 0 and 3600 seconds")
    return value


def _join_negative_ranges(argv: list[str]) -> list[str]:
    """``-w -5:5`` reads to argparse like an option; glue it as ``-w=-5:5``."""
    out: list[str] = []
    i = 0
    while i < len(argv):
        tok = argv[i]
        nxt = argv[i + 1] if i + 1 < len(argv) else ""
        if tok in ("-w", "-c", "--warning", "--critical") and nxt.startswith("-") \
                and nxt[1:2] in tuple("0123456789.~:"):
            out.append(f"{tok}={nxt}")
            i += 2
            continue
        out.append(tok)
        i += 1
    return out


def parse_arguments(plugin: Plugin, argv: Sequence[str]) -> argparse.Namespace:
    """Parse without running; raises UsageError (bad arguments) or _HelpRequested."""
    return build_parser(plugin).parse_args(_join_negative_ranges(list(argv)))


# ------------------------------------------------------------------ judging
class _Resource(nagiosplugin.Resource):
    def __init__(self, plugin: Plugin, ctx: Context) -> None:
        self.plugin = plugin
        self.ctx = ctx
        self.reading: Reading | None = None

    @property
    def name(self) -> str:
        return self.plugin.name

    def probe(self) -> list[nagiosplugin.Metric]:
        self.reading = self.plugin.probe(self.ctx)
        r = self.reading
        return [nagiosplugin.Metric(self.plugin.label, r.value, self.plugin.uom,
                                    r.min, r.max, context="judged")]


class _Judge(nagiosplugin.ScalarContext):
    def __init__(self, name: str, warning: Range, critical: Range) -> None:
        super().__init__(name)
        self.warning, self.critical = warning, critical  # keep our Range, not a plain copy

    def evaluate(self, metric: nagiosplugin.Metric, resource: _Resource) -> nagiosplugin.Result:
        reading = resource.reading
        assert reading is not None
        if not reading.judge:
            state, hint = OK, None
        elif self.critical.alerts(metric.value):
            state, hint = CRITICAL, _violation(self.critical, metric.value, "critical")
        elif self.warning.alerts(metric.value):
            state, hint = WARNING, _violation(self.warning, metric.value, "warning")
        else:
            state, hint = OK, None
        state = worst(state, reading.state)
        return nagiosplugin.Result(_NP_STATES[state], hint, metric)

    def performance(self, metric: nagiosplugin.Metric, resource: _Resource) -> Perfdata | None:
        reading = resource.reading
        assert reading is not None
        if not reading.perf:
            return None
        return Perfdata(metric.name, metric.value, metric.uom, self.warning, self.critical,
                        metric.min, metric.max)


_NP_STATES = {OK: nagiosplugin.Ok, WARNING: nagiosplugin.Warn,
              CRITICAL: nagiosplugin.Critical, UNKNOWN: nagiosplugin.Unknown}


def _violation(r: Range, value: float, level: str) -> str:
    if r.invert:
        return f"{level} within {format_number(r.start)}:{format_number(r.end)}"
    if value > r.end:
        return f"{level} above {format_number(r.end)}"
    return f"{level} below {format_number(r.start)}"


def judge(plugin: Plugin, ctx: Context) -> tuple[ServiceState, str, list[str]]:
    """Probe and judge: (state, text, perfdata items)."""
    resource = _Resource(plugin, ctx)
    judge_ctx = _Judge("judged", ctx.args.warning, ctx.args.critical)
    check = nagiosplugin.Check(resource, judge_ctx)
    check()
    result = check.results.first_significant
    reading = resource.reading
    assert reading is not None
    state = ServiceState(int(result.state))
    text = reading.text
    if result.hint:
        text = f"{text} ({result.hint})"
    perf = [str(p) for p in ([result.metric.performance()] if reading.perf else []) if p]
    perf += [str(p) for p in reading.extra]
    return state, text, perf


# ------------------------------------------------------------------- output
def sanitize(text: str) -> str:
    """One line, no ``|`` (it starts perfdata), no control characters."""
    out = "".join(" " if (c in "\r\n\t" or ord(c) < 32 or c == "\x7f") else c for c in text)
    return " ".join(out.replace("|", "/").split())


def format_line(service: str, state: int, text: str, perf: Sequence[str] = ()) -> str:
    text = sanitize(text)
    if len(text) > MAX_TEXT:
        text = text[: MAX_TEXT - 3].rstrip() + "..."
    line = f"{service} {ServiceState(state).text}: {text}"
    if perf:
        kept: list[str] = []
        for item in perf:
            candidate = line + " | " + " ".join([*kept, item])
            if len(candidate.encode()) > MAX_LINE:
                break  # whole perfdata items only, never a cut one
            kept.append(item)
        if kept:
            line += " | " + " ".join(kept)
    return line.encode()[:MAX_LINE].decode(errors="ignore")


# ---------------------------------------------------------------- the alarm
class HardAlarm:
    """``-t``: SIGALRM raises :class:`PluginTimeout` in the main thread; if the
    main thread is stuck in C code and cannot take it, a backstop thread
    prints the timeout line itself and ends the process."""

    GRACE = 1.0

    def __init__(self, seconds: float, backstop_line: str, backstop_code: int) -> None:
        self.seconds = seconds
        self.line = backstop_line
        self.code = backstop_code
        self._timer: threading.Timer | None = None
        self._old: Any = None

    def _raise(self, signum: int, frame: Any) -> None:
        raise PluginTimeout()

    def _backstop(self) -> None:
        try:
            os.write(1, (self.line + "\n").encode())
        finally:
            os._exit(self.code)

    def __enter__(self) -> HardAlarm:
        if threading.current_thread() is not threading.main_thread():
            # run() called in-process from a worker thread: signals cannot be
            # used there, and ending the process would end the caller too
            return self
        self._old = signal.signal(signal.SIGALRM, self._raise)
        signal.setitimer(signal.ITIMER_REAL, self.seconds)
        self._timer = threading.Timer(self.seconds + self.GRACE, self._backstop)
        self._timer.daemon = True
        self._timer.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._old is None and self._timer is None:
            return
        signal.setitimer(signal.ITIMER_REAL, 0)
        if self._timer is not None:
            self._timer.cancel()
        signal.signal(signal.SIGALRM, self._old or signal.SIG_DFL)


# ---------------------------------------------------------------------- run
def _setup_logging(verbose: int) -> None:
    root = logging.getLogger()
    if root.handlers:
        return
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    root.addHandler(handler)
    root.setLevel(logging.DEBUG if verbose > 1 else logging.INFO if verbose else logging.ERROR)


def run(plugin: Plugin, argv: Sequence[str], out: Any = None, prog: str | None = None
        ) -> ServiceState:
    """Parse, probe under the alarm, judge, print one line; return the exit code."""
    out = out or sys.stdout
    service = plugin.name.upper()
    parser = build_parser(plugin, prog)
    try:
        args = parser.parse_args(_join_negative_ranges(list(argv)))
    except _HelpRequested:
        return UNKNOWN
    except UsageError as exc:
        usage = " ".join(parser.format_usage().split())
        print(format_line(service, UNKNOWN, f"{exc} ({usage}; --help for more)"), file=out)
        return UNKNOWN
    _setup_logging(args.verbose)
    ctx = Context(plugin, args)
    phase = ["setup"]
    t = format_number(args.timeout)
    timeout_state = CRITICAL if plugin.remote else UNKNOWN
    timeout_text = (f"timeout after {t}s: no answer from the target" if plugin.remote
                    else f"plugin timed out after {t}s")
    backstop = format_line(service, timeout_state, timeout_text + " (hard stop)")
    try:
        with HardAlarm(args.timeout, backstop, timeout_state):
            phase[0] = "probe"
            state, text, perf = judge(plugin, ctx)
            phase[0] = "done"
    except PluginTimeout:
        state, perf = (timeout_state, []) if phase[0] == "probe" else (UNKNOWN, [])
        text = timeout_text if phase[0] == "probe" else f"plugin timed out after {t}s"
    except TargetDown as exc:
        state, text, perf = CRITICAL, str(exc), []
    except PluginError as exc:
        state, text, perf = UNKNOWN, str(exc), []
    except KeyboardInterrupt:
        state, text, perf = UNKNOWN, "interrupted", []
    except Exception as exc:  # guarded: any crash of our own is UNKNOWN, never a traceback
        log.debug("plugin %s crashed", plugin.name, exc_info=True)
        state, text, perf = UNKNOWN, f"plugin error: {type(exc).__name__}: {exc}", []
    print(format_line(service, state, text, perf), file=out)
    out.flush()
    return state


def plugin_class(name: str) -> type[Plugin]:
    """The plugin class of ``name``; KeyError if there is no such plugin.

    Plugins are imported by name (``checks.<name>``), so this framework module
    knows the list, not the plugins' code."""
    from checks import PLUGINS

    if name not in PLUGINS:
        raise KeyError(name)
    module = importlib.import_module(f"checks.{name}")
    cls: type[Plugin] = module.PLUGIN
    return cls
