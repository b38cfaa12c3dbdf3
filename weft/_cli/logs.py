"""The command line's logging: what ``-q``, ``-v``, ``--log-level``,
``--log-file`` and ``--log-format`` set up.

The library configures nothing: its modules log on the ``weft`` tree (each
on its package's logger: ``weft.drivers.reactor``, ``weft.protocols.tls``)
and only this module, run by the command line, attaches a handler.

* **Where**: stderr, or ``--log-file FILE`` (appended to).
* **How much**: ``info`` by default; ``-q`` warnings and errors only,
  ``-qq`` errors only; ``-v`` debug (and tracebacks), ``-vv`` debug from
  every library in the process too (asyncio, Trio, Twisted), not only
  weft's; ``--log-level LEVEL`` says it by name, and wins over ``-q``/``-v``.
* **Format**: ``text`` is ``weft: message`` on stderr (a command-line
  tool's line) and ``TIME LEVEL LOGGER: message`` in a file (read later,
  so dated); ``json`` is one JSON object per line, with ``time``, ``level``,
  ``logger``, ``message``, the record's extras, and ``exception`` (a
  traceback) when there is one.

The access log (``weft.access``, :data:`ACCESS_LOGGER`) goes through the
same handler and format; in text its lines are written as they are (Common
Log Format carries its own date), without the ``weft:`` prefix.
"""

from __future__ import annotations

import argparse
import datetime
import json
import logging
import sys
import traceback
from dataclasses import dataclass
from typing import Any, TextIO

from weft.protocols.errors import ArgumentError
from weft.protocols.http._access_log import ACCESS_LOGGER

__all__ = [
    "ACCESS_LOGGER",
    "FORMATS",
    "LEVELS",
    "JSONFormatter",
    "LogSettings",
    "TextFormatter",
    "add_logging_options",
    "configure",
    "describe",
    "settings_from",
]


LEVELS = {
    "debug": logging.DEBUG,
    "info": logging.INFO,
    "warning": logging.WARNING,
    "error": logging.ERROR,
    "critical": logging.CRITICAL,
}
FORMATS = ("text", "json")

# What -q/-v count to, from -qq to -vv.
_BY_VERBOSITY = {-2: logging.ERROR, -1: logging.WARNING, 0: logging.INFO, 1: logging.DEBUG}

# A LogRecord's own attributes: whatever else it has came in ``extra=``.
_RECORD_ATTRIBUTES = frozenset(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {
    "message",
    "asctime",
    "taskName",
}


# ------------------------------------------------------------------ options


def add_logging_options(parser: argparse.ArgumentParser, *, top: bool) -> None:
    """``-q``, ``-v``, ``--log-level``, ``--log-file``, ``--log-format`` on ``parser``.

    They go before or after the command: the main parser's (``top``) and
    the sub-command's count separately (``weft -v serve -v`` is ``-vv``),
    and a sub-command that is not given an option leaves the main parser's.
    """
    side = "before" if top else "after"
    group = parser.add_argument_group("logging")
    group.add_argument(
        "-v",
        "--verbose",
        action="count",
        dest=f"verbose_{side}",
        default=0 if top else argparse.SUPPRESS,
        help="debug logs and tracebacks; -vv: other libraries' debug logs too",
    )
    group.add_argument(
        "-q",
        "--quiet",
        action="count",
        dest=f"quiet_{side}",
        default=0 if top else argparse.SUPPRESS,
        help="warnings and errors only; -qq: errors only",
    )
    missing: Any = None if top else argparse.SUPPRESS
    group.add_argument(
        "--log-level",
        choices=list(LEVELS),
        type=str.lower,
        default=missing,
        help="the least severe level logged (default info; overrides -q and -v)",
    )
    group.add_argument(
        "--log-file", metavar="FILE", default=missing, help="append the log to FILE instead of stderr"
    )
    group.add_argument(
        "--log-format",
        choices=FORMATS,
        default=missing,
        help="text (default) or json: one JSON object per line",
    )


@dataclass(frozen=True)
class LogSettings:
    """What the options asked for."""

    #: The least severe level of the weft tree that is logged.
    level: int = logging.INFO
    #: Debug logs from every logger in the process, not only weft's (-vv).
    everything: bool = False
    #: Where the log goes (None: stderr).
    file: str | None = None
    #: ``text`` or ``json``.
    format: str = "text"

    @property
    def tracebacks(self) -> bool:
        """Whether errors come with their tracebacks (at debug level)."""
        return self.level <= logging.DEBUG


def settings_from(args: argparse.Namespace) -> LogSettings:
    """The settings the parsed options say."""
    verbose = getattr(args, "verbose_before", 0) + getattr(args, "verbose_after", 0)
    quiet = getattr(args, "quiet_before", 0) + getattr(args, "quiet_after", 0)
    count = max(-2, min(1, verbose - quiet))
    level = _BY_VERBOSITY[count]
    if (name := getattr(args, "log_level", None)) is not None:
        level = LEVELS[name]
    return LogSettings(
        level=level,
        everything=verbose - quiet >= 2,
        file=getattr(args, "log_file", None),
        format=getattr(args, "log_format", None) or "text",
    )


# ---------------------------------------------------------------- formats


def describe(exc: BaseException) -> str:
    """One line saying what went wrong, without the ``[Errno 98]`` noise."""
    if isinstance(exc, OSError) and exc.strerror:
        text = exc.strerror
        if exc.filename is not None and str(exc.filename) not in text:
            text += f": {exc.filename}"
        return text
    return str(exc) or type(exc).__name__


class TextFormatter(logging.Formatter):
    """``weft: message`` (``dated``: ``TIME LEVEL LOGGER: message``); an
    exception summed up on the same line, or with its traceback when
    ``tracebacks``.  Access log lines are written as they are."""

    def __init__(self, *, tracebacks: bool, dated: bool) -> None:
        super().__init__()
        self.tracebacks = tracebacks
        self.dated = dated

    def format(self, record: logging.LogRecord) -> str:
        """The record as one line (more with a traceback)."""
        message = record.getMessage()
        if record.name != ACCESS_LOGGER:
            message = f"{self._prefix(record)}: {message}"
        exc = record.exc_info[1] if record.exc_info else None
        if exc is not None:
            if self.tracebacks:
                message += "\n" + "".join(traceback.format_exception(exc)).rstrip("\n")
            else:
                message += f" ({type(exc).__name__}: {describe(exc)})"
        if self.dated:
            message = f"{_timestamp(record)} {record.levelname} {message}"
        return message

    def _prefix(self, record: logging.LogRecord) -> str:
        # weft's own records say "weft:"; another library's (-vv) its name.
        if self.dated:
            return record.name
        return "weft" if record.name == "weft" or record.name.startswith("weft.") else record.name


class JSONFormatter(logging.Formatter):
    """One JSON object per record, on one line."""

    def format(self, record: logging.LogRecord) -> str:
        """``{"time": ..., "level": ..., "logger": ..., "message": ..., extras..., "exception": ...}``."""
        entry: dict[str, Any] = {
            "time": _timestamp(record),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key, value in vars(record).items():
            if key not in _RECORD_ATTRIBUTES and key not in entry:
                entry[key] = value
        if record.exc_info and record.exc_info[1] is not None:
            entry["exception"] = "".join(traceback.format_exception(record.exc_info[1])).rstrip("\n")
        return json.dumps(entry, default=str, ensure_ascii=False)


def _timestamp(record: logging.LogRecord) -> str:
    """The record's time in UTC, ISO 8601 to the millisecond."""
    when = datetime.datetime.fromtimestamp(record.created, datetime.UTC)
    return when.isoformat(timespec="milliseconds").replace("+00:00", "Z")


# -------------------------------------------------------------- configuring


@dataclass
class Configured:
    """The handler in place, and how to report a fatal error through it."""

    settings: LogSettings
    handler: logging.Handler

    def report(self, exc: BaseException) -> None:
        """The command failed with ``exc``: one line (and, at debug level, the
        traceback) on stderr, and the same as a record in the log when the
        log is JSON or goes to a file."""
        if self.settings.file is not None or self.settings.format == "json":
            # The message is the error itself: its traceback is added where
            # one is wanted (JSON's "exception" field, -v), not a summary of it again.
            with_traceback = self.settings.tracebacks or self.settings.format == "json"
            details = (type(exc), exc, exc.__traceback__) if with_traceback else None
            record = logging.LogRecord("weft", logging.ERROR, __file__, 0, describe(exc), None, details)
            # Past the level: -qq or --log-level critical must not lose why it failed.
            self.handler.handle(record)
            if self.settings.file is None:
                return  # the JSON line on stderr says it
        if self.settings.tracebacks:
            traceback.print_exception(exc)
        print(f"weft: {describe(exc)}", file=sys.stderr, flush=True)


def configure(settings: LogSettings, stderr: TextIO | None = None) -> Configured:
    """Attach one handler as ``settings`` say; return it.

    The ``weft`` logger gets the handler and the level, and does not
    propagate (an application that embeds the command line keeps its own
    root handlers out of it).  With ``everything`` (-vv) the root logger gets
    the same handler at debug level, for every other library's logs.

    Raises :class:`ArgumentError` when the log file cannot be opened.
    """
    handler: logging.Handler
    if settings.file is not None:
        try:
            handler = logging.FileHandler(settings.file, mode="a", encoding="utf-8")
        except OSError as exc:
            raise ArgumentError(f"--log-file {settings.file}: {exc.strerror or exc}") from exc
    else:
        handler = logging.StreamHandler(stderr if stderr is not None else sys.stderr)
    if settings.format == "json":
        handler.setFormatter(JSONFormatter())
    else:
        handler.setFormatter(TextFormatter(tracebacks=settings.tracebacks, dated=settings.file is not None))
    weft = logging.getLogger("weft")
    for old in weft.handlers[:]:
        weft.removeHandler(old)
        old.close()
    weft.addHandler(handler)
    weft.setLevel(settings.level)
    weft.propagate = False
    if settings.everything:
        root = logging.getLogger()
        root.addHandler(handler)
        root.setLevel(logging.DEBUG)
    return Configured(settings, handler)
