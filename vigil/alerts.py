"""E-mail alerts to ``[Global] last_resort_email``, flood-limited.

As in the source's ``[Email]`` section: when ``Max_Sequential_Emails`` alerts
have gone out within the last ``Look_Behind_sec``, further alerts are held
back. Held-back alerts are not forgotten: they are counted, and the next
alert that is allowed carries a summary of them (how many, since when,
their subjects). The limiter's memory lives in a small state file
(``[Email] Flood_State_File``) shared by every process that alerts
(radcheck, ``vigil alert send`` from Nagios, the watchdog), so neither a
restart nor a second sender resets it.

Subjects and bodies come from templates in ``[Email] Mail_Templates_Dir``:
``<name>.txt``, a ``Subject:`` line, a blank line, the body, with ``$name``
placeholders (:class:`string.Template`). A missing or unreadable template
falls back to the built-in text with a warning: an alert must never be lost
for want of a template.

:func:`send_alert` is synchronous (bounded by ``SMTP_Timeout_sec`` per SMTP
step); long-running programs use :class:`AlertWorker`, which sends from a
thread so that a refusing or hung SMTP server never blocks them.
"""

from __future__ import annotations

import contextlib
import email.policy
import email.utils
import logging
import queue
import smtplib
import string
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from email.message import EmailMessage
from pathlib import Path
from typing import Any

from vigil import statefile
from vigil.config import Config

log = logging.getLogger(__name__)

MAX_HELD_SUBJECTS = 10

# The core's own template; etc/Mail_Templates ships the same text. Rooms pass
# their built-in texts to render() (radcheck's are in radcheck/mail.py).
DEFAULT_TEMPLATES: dict[str, str] = {
    "flood_summary": (
        "Subject: (not used)\n"
        "\n"
        "-- \n"
        "$held alert(s) held back by the e-mail flood limit "
        "($max_mails per $window s) since $since; $undelivered could not be delivered.\n"
        "$subjects\n"
    ),
}


class AlertDeliveryError(Exception):
    """The SMTP server could not be reached or did not accept the message."""


# ------------------------------------------------------------------ templates

def _split_template(text: str) -> tuple[str, str]:
    head, sep, body = text.partition("\n\n")
    if sep and head.lower().startswith("subject:"):
        return head[len("subject:"):].strip(), body
    return "$subject", text


def load_template(directory: Path, name: str, builtin: str | None = None) -> tuple[str, str]:
    """(subject, body) template texts; ``builtin`` (or the core's own) if the file is missing."""
    path = directory / f"{name}.txt"
    fallback = builtin if builtin is not None else DEFAULT_TEMPLATES.get(name)
    try:
        return _split_template(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as exc:
        if fallback is None:
            raise
        log.warning("mail template %s unusable (%s); using the built-in text", path, exc)
        return _split_template(fallback)


def render(cfg: Config, name: str, builtin: str | None = None,
           **values: Any) -> tuple[str, str]:
    """Subject and body of template ``name``, with $host, $site, $time filled in too.

    ``builtin`` is the text used when ``Mail_Templates_Dir`` lacks the file:
    an alert must never be lost for want of a template.
    """
    subject_t, body_t = load_template(cfg.path("Email", "Mail_Templates_Dir"), name, builtin)
    common = {"host": cfg.get("Site", "Host_Name"), "site": cfg.get("Site", "Name"),
              "time": time.strftime("%Y-%m-%d %H:%M:%S %Z")}
    merged = {**common, **{k: "-" if v is None else v for k, v in values.items()}}
    subject = string.Template(subject_t).safe_substitute(merged)
    body = string.Template(body_t).safe_substitute(merged)
    return _one_line(subject), body


def _one_line(text: str) -> str:
    # A header must stay one line: a newline in a subject would inject headers.
    return " ".join(text.split())


# -------------------------------------------------------------- flood limit

@dataclass
class Held:
    """Alerts held back (or not delivered) since the last mail that went out."""

    count: int = 0
    undelivered: int = 0
    since: float | None = None
    subjects: list[str] = field(default_factory=list)

    def add(self, subject: str, now: float, *, undelivered: bool = False) -> None:
        if undelivered:
            self.undelivered += 1
        else:
            self.count += 1
        self.since = now if self.since is None else min(self.since, now)
        if len(self.subjects) < MAX_HELD_SUBJECTS:
            self.subjects.append(subject)

    def merge(self, other: Held) -> None:
        self.count += other.count
        self.undelivered += other.undelivered
        if other.since is not None:
            self.since = other.since if self.since is None else min(self.since, other.since)
        self.subjects = (other.subjects + self.subjects)[:MAX_HELD_SUBJECTS]

    def __bool__(self) -> bool:
        return bool(self.count or self.undelivered)


@dataclass
class Ticket:
    """Permission to send one mail: its slot in the window and the summary it carries."""

    slot: float
    held: Held


class FloodLimiter:
    """At most ``max_mails`` within ``window`` seconds, shared through a state file.

    ``path`` None keeps the memory in this object only (tests, one-shot tools
    without a state folder). The clock is injectable so the logic is tested
    without sleeping.
    """

    def __init__(self, path: Path | None, max_mails: int, window: float,
                 clock: Callable[[], float] = time.time) -> None:
        if max_mails < 1:
            raise ValueError("max_mails must be at least 1")
        self.path = Path(path) if path is not None else None
        self.max_mails = max_mails
        self.window = window
        self.clock = clock
        self._memory: dict[str, Any] = {}
        self._mutex = threading.Lock()

    @contextlib.contextmanager
    def _state(self) -> Iterator[dict[str, Any]]:
        with self._mutex, contextlib.ExitStack() as stack:
            if self.path is None:
                yield self._memory
                return
            try:
                # Not statefile.locked(self.path): write_json takes that lock itself.
                stack.enter_context(statefile.locked(self.path.with_name(
                    self.path.name + ".admit")))
                try:
                    state = statefile.read_json(self.path, default={}) or {}
                    if not isinstance(state, dict):
                        raise statefile.CorruptStateError(f"{self.path}: not a JSON object")
                except statefile.CorruptStateError as exc:
                    log.error("flood limiter state unreadable, starting afresh: %s", exc)
                    state = {}
            except OSError as exc:
                # Fail open: an alert that cannot be counted is still sent.
                log.error("flood limiter state %s unusable (%s); not limiting this alert",
                          self.path, exc)
                yield {}
                return
            yield state
            try:
                statefile.write_json(self.path, state)
            except OSError as exc:
                log.error("cannot save flood limiter state %s: %s", self.path, exc)

    @staticmethod
    def _held(state: dict[str, Any]) -> Held:
        raw = state.get("held") or {}
        try:
            return Held(int(raw.get("count", 0)), int(raw.get("undelivered", 0)),
                        raw.get("since"), [str(s) for s in raw.get("subjects", [])])
        except (TypeError, ValueError, AttributeError):
            return Held()

    def admit(self, subject: str) -> Ticket | None:
        """A ticket if a mail may go out now; None (and the alert counted) if not."""
        now = self.clock()
        with self._state() as state:
            sent = [t for t in state.get("sent", []) if isinstance(t, int | float)
                    and now - self.window < t <= now + 1]
            held = self._held(state)
            if len(sent) >= self.max_mails:
                held.add(subject, now)
                state["sent"], state["held"] = sent, asdict(held)
                return None
            sent.append(now)
            state["sent"], state["held"] = sent, asdict(Held())
            return Ticket(now, held)

    def settle(self, ticket: Ticket, delivered: bool, subject: str = "") -> None:
        """After sending: an undelivered mail gives back its slot and its summary."""
        if delivered:
            return
        with self._state() as state:
            sent = list(state.get("sent", []))
            with contextlib.suppress(ValueError):
                sent.remove(ticket.slot)
            held = self._held(state)
            held.merge(ticket.held)
            held.add(subject, ticket.slot, undelivered=True)
            state["sent"], state["held"] = sent, asdict(held)

    def held(self) -> Held:
        """What is held back now; read-only (check plugins call it, maybe as another user)."""
        if self.path is None:
            with self._mutex:
                return self._held(self._memory)
        try:
            state = statefile.read_json(self.path, default={}) or {}
        except statefile.CorruptStateError as exc:
            log.error("flood limiter state unreadable: %s", exc)
            return Held()
        return self._held(state) if isinstance(state, dict) else Held()


def limiter_for(cfg: Config, clock: Callable[[], float] = time.time) -> FloodLimiter:
    return FloodLimiter(cfg.state_file("Email", "Flood_State_File", "alerts-flood.json"),
                        cfg.get("Email", "Max_Sequential_Emails"),
                        cfg.get("Email", "Look_Behind_sec"), clock)


def summary_text(cfg: Config, held: Held) -> str:
    since = (time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(held.since))
             if held.since is not None else "-")
    subjects = "\n".join(f"  - {s}" for s in held.subjects)
    more = held.count + held.undelivered - len(held.subjects)
    if more > 0:
        subjects += f"\n  - ... and {more} more"
    _, body = render(cfg, "flood_summary", held=held.count, undelivered=held.undelivered,
                     since=since, subjects=subjects,
                     max_mails=cfg.get("Email", "Max_Sequential_Emails"),
                     window=cfg.get("Email", "Look_Behind_sec"))
    return body


# -------------------------------------------------------------------- SMTP

# Python's header folder (3.11) breaks a subject that starts with "[" before
# its first word ("Subject:" CRLF " [Vigil site-a] ..."), which mail readers
# show as an empty first line. Subjects are one short line by construction
# (_one_line), so headers are only folded at RFC 5322's hard limit of 998.
MAIL_POLICY = email.policy.default.clone(max_line_length=998)


def build_message(cfg: Config, subject: str, body: str, *, kind: str,
                  to: str | None = None) -> EmailMessage:
    msg = EmailMessage(policy=MAIL_POLICY)
    msg["From"] = cfg.get("Global", "email_header_from")
    msg["To"] = to or cfg.get("Global", "last_resort_email")
    msg["Subject"] = _one_line(subject)
    msg["Date"] = email.utils.formatdate(localtime=True)
    msg["Message-ID"] = email.utils.make_msgid(domain=_domain(msg["From"]))
    msg["X-Vigil-Kind"] = _one_line(kind)
    msg["X-Vigil-Host"] = cfg.get("Site", "Host_Name")
    msg.set_content(body)
    return msg


def _domain(address: str) -> str:
    return address.rpartition("@")[2] or "localhost"


def deliver(cfg: Config, msg: EmailMessage) -> None:
    """Hand the message to ``[Email] SMTP_Host``; every SMTP step has the timeout."""
    host, port = cfg.get("Email", "SMTP_Host"), cfg.get("Email", "SMTP_Port")
    timeout = cfg.get("Email", "SMTP_Timeout_sec")
    try:
        # local_hostname given: smtplib would otherwise ask DNS for our FQDN (can hang).
        smtp = smtplib.SMTP(host, port, timeout=timeout,
                            local_hostname=cfg.get("Site", "Host_Name"))
    except (OSError, smtplib.SMTPException) as exc:
        raise AlertDeliveryError(f"SMTP {host}:{port}: cannot connect: {_why(exc)}") from exc
    try:
        smtp.send_message(msg)
    except (OSError, smtplib.SMTPException) as exc:
        raise AlertDeliveryError(f"SMTP {host}:{port}: not accepted: {_why(exc)}") from exc
    finally:
        # The message is accepted once DATA is answered; a QUIT that fails changes nothing.
        with contextlib.suppress(OSError, smtplib.SMTPException):
            smtp.quit()
        smtp.close()


def _why(exc: BaseException) -> str:
    if isinstance(exc, TimeoutError):
        return "timed out"
    if isinstance(exc, smtplib.SMTPRecipientsRefused):
        return "; ".join(f"{rcpt}: {code} {resp.decode(errors='replace')}"
                         for rcpt, (code, resp) in exc.recipients.items())
    if isinstance(exc, smtplib.SMTPResponseException):
        err = exc.smtp_error  # bytes from a server, str when smtplib made it up
        text = err.decode(errors="replace") if isinstance(err, bytes) else err
        return f"{exc.smtp_code} {text}"
    return str(exc) or type(exc).__name__


SENT, HELD, FAILED = "sent", "held", "failed"


def send_alert(cfg: Config, subject: str, body: str, *, kind: str = "alert",
               rate_limited: bool = True, to: str | None = None,
               limiter: FloodLimiter | None = None) -> bool:
    """Send one alert now; True if the SMTP server accepted it.

    False when the flood limit held it back (it is counted and summarised in
    the next mail that goes out) or when delivery failed (logged; counted as
    undelivered in that summary). :func:`send_alert_outcome` says which.
    """
    return send_alert_outcome(cfg, subject, body, kind=kind, rate_limited=rate_limited,
                              to=to, limiter=limiter) == SENT


def send_alert_outcome(cfg: Config, subject: str, body: str, *, kind: str = "alert",
                       rate_limited: bool = True, to: str | None = None,
                       limiter: FloodLimiter | None = None) -> str:
    """Like :func:`send_alert`; returns SENT, HELD or FAILED."""
    ticket: Ticket | None = None
    if rate_limited:
        limiter = limiter or limiter_for(cfg)
        ticket = limiter.admit(_one_line(subject))
        if ticket is None:
            log.warning("alert held back by the flood limit (%d per %d s): %s",
                        cfg.get("Email", "Max_Sequential_Emails"),
                        cfg.get("Email", "Look_Behind_sec"), _one_line(subject))
            return HELD
        if ticket.held:
            body = body.rstrip("\n") + "\n\n" + summary_text(cfg, ticket.held)
    msg = build_message(cfg, subject, body, kind=kind, to=to)
    try:
        deliver(cfg, msg)
    except AlertDeliveryError as exc:
        log.error("alert not delivered to %s: %s (subject: %s)", msg["To"], exc, msg["Subject"])
        if ticket is not None and limiter is not None:
            limiter.settle(ticket, delivered=False, subject=str(msg["Subject"]))
        return FAILED
    log.info("alert sent to %s: %s", msg["To"], msg["Subject"])
    return SENT


# ----------------------------------------------------- background sending

class AlertWorker:
    """Sends alerts from a thread: a slow or dead SMTP server never blocks the caller.

    ``submit`` only queues. The queue is bounded; when it is full (SMTP hung
    for a long time) the alert is dropped with an error in the log, since a
    monitoring loop must keep running whatever happens to mail.
    """

    def __init__(self, cfg: Config, *, maxsize: int = 64,
                 send: Callable[..., bool] = send_alert) -> None:
        self.cfg = cfg
        self._send = send
        self._queue: queue.Queue[tuple[str, str, str] | None] = queue.Queue(maxsize)
        self._thread = threading.Thread(target=self._run, name="alert-sender", daemon=True)
        self.sent = 0
        self.not_sent = 0

    def start(self) -> AlertWorker:
        self._thread.start()
        return self

    def submit(self, subject: str, body: str, kind: str = "alert") -> bool:
        try:
            self._queue.put_nowait((subject, body, kind))
        except queue.Full:
            log.error("alert queue full (SMTP too slow?); dropped: %s", _one_line(subject))
            return False
        return True

    def _run(self) -> None:
        while True:
            item = self._queue.get()
            try:
                if item is None:
                    return
                subject, body, kind = item
                try:
                    ok = self._send(self.cfg, subject, body, kind=kind)
                except Exception:
                    log.exception("alert sending crashed: %s", _one_line(subject))
                    ok = False
                if ok:
                    self.sent += 1
                else:
                    self.not_sent += 1
            finally:
                self._queue.task_done()

    def pending(self) -> int:
        return self._queue.unfinished_tasks

    def close(self, timeout: float) -> int:
        """Let queued alerts go out for up to ``timeout`` s; returns how many did not."""
        deadline = time.monotonic() + timeout
        with contextlib.suppress(queue.Full):
            self._queue.put(None, timeout=max(0.0, timeout))
        if self._thread.is_alive():
            self._thread.join(max(0.0, deadline - time.monotonic()))
        if not self._thread.is_alive():
            return 0
        left = max(0, self.pending() - 1)  # minus the stop marker
        if left:
            log.warning("%d alert(s) still unsent at exit (SMTP slow or down)", left)
        return left
