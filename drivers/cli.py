"""The ``weft`` command line (also ``python -m weft.drivers``).

::

    weft serve {echo,pubsub,http} [--host H] [--port P | --unix PATH | --stdio]
               [--driver D] [--grace SECONDS]
    weft connect HOST PORT | --unix PATH  [--driver D] [--timeout SECONDS]
    weft drivers

Exit status: 0 for a clean end (a server stopped by SIGINT or SIGTERM
included), 1 when something failed at run time (a port in use, a refused or
reset connection, a timeout), 2 for bad arguments, and 128 + the signal's
number for a ``connect`` ended by a signal.  Failures are one line on stderr;
``-v`` adds the traceback.  See ``docs/cli.md``.
"""

from __future__ import annotations

import argparse
import logging
import math
import signal
import sys
import threading
import traceback
from collections.abc import Callable, Sequence
from importlib import metadata
from typing import NoReturn

from weft.drivers.bridge import StdioBridge
from weft.drivers.registry import DRIVERS, open_runtime
from weft.drivers.runtime import ProtocolFactory
from weft.drivers.serving import DEFAULT_GRACE, DEFAULT_HOST, DEFAULT_PORT, format_address, serve
from weft.protocols.echo import EchoProtocol
from weft.protocols.errors import ArgumentError, WeftError
from weft.protocols.pubsub import PubSubHub, PubSubServerProtocol

__all__ = ["EXIT_FAILURE", "EXIT_OK", "EXIT_USAGE", "build_parser", "describe", "main"]

EXIT_OK = 0
#: Something failed at run time: a port in use, a refused connection...
EXIT_FAILURE = 1
#: Bad arguments (argparse's status too).
EXIT_USAGE = 2


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; return the exit status."""
    args = build_parser().parse_args(argv)
    verbose: bool = args.verbose
    _configure_logging(verbose)
    try:
        status: int = args.run(args)
    except ArgumentError as exc:
        _report(exc, verbose)
        return EXIT_USAGE
    except (OSError, WeftError) as exc:
        _report(exc, verbose)
        return EXIT_FAILURE
    except KeyboardInterrupt:
        # A Ctrl-C before the signal handlers were set (they make it graceful).
        return 128 + signal.SIGINT
    return status


# ------------------------------------------------------------------ parsing


class _Parser(argparse.ArgumentParser):
    """argparse, with every usage error on one line."""

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_USAGE, f"{self.prog}: {message} (see '{self.prog} --help')\n")


def build_parser() -> argparse.ArgumentParser:
    """The parser for every command."""
    parser = _Parser(prog="weft", description="weft's command line: serve a protocol, connect to one.")
    parser.add_argument("--version", action="version", version=f"weft {_version()}")
    _add_verbose(parser, default=False)
    parser.set_defaults(run=lambda _args: parser.error("choose a command: serve, connect or drivers"))
    commands = parser.add_subparsers(title="commands", metavar="COMMAND")
    _add_serve(commands)
    _add_connect(commands)
    drivers = commands.add_parser("drivers", help="list the drivers and whether each can run here")
    _add_verbose(drivers)
    drivers.set_defaults(run=_drivers)
    return parser


def _add_serve(commands: argparse._SubParsersAction[_Parser]) -> None:
    parser = commands.add_parser("serve", help="serve a protocol until SIGINT or SIGTERM")
    parser.add_argument("protocol", choices=list(_SERVERS), help="what to serve")
    parser.add_argument(
        "--host",
        help=f"the address to listen on (default {DEFAULT_HOST}; '' for every interface)",
    )
    where = parser.add_mutually_exclusive_group()
    where.add_argument(
        "--port", type=_port, help=f"the TCP port (default {DEFAULT_PORT}; 0 picks a free one)"
    )
    where.add_argument("--unix", metavar="PATH", help="listen on a UNIX-domain socket instead")
    where.add_argument(
        "--stdio", action="store_true", help="serve one connection over stdin/stdout, then exit"
    )
    _add_driver(parser)
    parser.add_argument(
        "--grace",
        type=_seconds(allow_zero=True),
        default=DEFAULT_GRACE,
        metavar="SECONDS",
        help=f"on SIGINT/SIGTERM, how long open connections may finish (default {DEFAULT_GRACE:g})",
    )
    _add_verbose(parser)
    parser.set_defaults(run=_serve, parser=parser)


def _add_connect(commands: argparse._SubParsersAction[_Parser]) -> None:
    parser = commands.add_parser(
        "connect", help="connect stdin/stdout to a server, like nc; stdin's EOF half-closes"
    )
    parser.add_argument("host", nargs="?", metavar="HOST")
    parser.add_argument("port", nargs="?", type=_port, metavar="PORT")
    parser.add_argument("--unix", metavar="PATH", help="connect to a UNIX-domain socket instead")
    _add_driver(parser)
    parser.add_argument(
        "--timeout",
        type=_seconds(allow_zero=False),
        metavar="SECONDS",
        help="give up connecting, or end a session with nothing sent either way, after this long",
    )
    _add_verbose(parser)
    parser.set_defaults(run=_connect, parser=parser)


def _add_driver(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--driver", choices=list(DRIVERS), default="reactor", help="the driver to run on (default reactor)"
    )


def _add_verbose(parser: argparse.ArgumentParser, default: object = argparse.SUPPRESS) -> None:
    # SUPPRESS on the sub-commands: "weft -v serve" and "weft serve -v" both work,
    # and a sub-command without -v does not undo the main parser's.
    parser.add_argument(
        "-v", "--verbose", action="store_true", default=default, help="show tracebacks and debug logs"
    )


def _port(text: str) -> int:
    try:
        port = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a port number: {text!r}") from None
    if not 0 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"port {port} is out of range (0 to 65535)")
    return port


def _seconds(*, allow_zero: bool) -> Callable[[str], float]:
    def seconds(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not a number of seconds: {text!r}") from None
        if math.isnan(value) or math.isinf(value) or value < 0 or (value == 0 and not allow_zero):
            bound = ">= 0" if allow_zero else "> 0"
            raise argparse.ArgumentTypeError(f"seconds must be finite and {bound}, not {text!r}")
        return value

    return seconds


def _version() -> str:
    try:
        return metadata.version("weft")
    except metadata.PackageNotFoundError:
        return "(not installed)"


# ----------------------------------------------------------------- commands


def _echo() -> ProtocolFactory:
    return EchoProtocol


def _pubsub() -> ProtocolFactory:
    hub = PubSubHub()  # one hub: every connection publishes to every other
    return lambda: PubSubServerProtocol(hub)


def _http() -> ProtocolFactory:
    raise ArgumentError(
        "serve http is not available yet (HTTP/1.1 support has not landed); try echo or pubsub"
    )


_SERVERS: dict[str, Callable[[], ProtocolFactory]] = {"echo": _echo, "pubsub": _pubsub, "http": _http}


def _serve(args: argparse.Namespace) -> int:
    if args.host is not None and (args.unix is not None or args.stdio):
        args.parser.error("--host goes with --port, not with --unix or --stdio")
    factory = _SERVERS[args.protocol]()
    serve(
        factory,
        host=DEFAULT_HOST if args.host is None else args.host,
        port=args.port,
        unix=args.unix,
        stdio=args.stdio,
        driver=args.driver,
        grace=args.grace,
    )
    return EXIT_OK


def _connect(args: argparse.Namespace) -> int:
    if args.unix is not None:
        if args.host is not None:
            args.parser.error("give HOST PORT or --unix PATH, not both")
        target = args.unix
    elif args.host is None or args.port is None:
        args.parser.error("give HOST PORT, or --unix PATH")
    else:
        target = format_address((args.host, args.port))
    runtime = open_runtime(args.driver)
    try:
        bridge = StdioBridge(runtime, target, idle_timeout=args.timeout)
        limit = {} if args.timeout is None else {"timeout": args.timeout}
        if args.unix is not None:
            connecting = runtime.connect_unix(bridge.network_protocol, args.unix, **limit)
        else:
            connecting = runtime.connect_tcp(bridge.network_protocol, args.host, args.port, **limit)
        if threading.current_thread() is threading.main_thread():
            # Handled, not fatal: the terminal's stdin must get its mode back.
            for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
                runtime.add_signal_handler(signum, bridge.interrupt, signum)
        bridge.run(connecting)
    finally:
        runtime.close()
    return EXIT_OK if bridge.interrupted is None else 128 + bridge.interrupted


def _drivers(_args: argparse.Namespace) -> int:
    rows = [("DRIVER", "AVAILABLE", "DESCRIPTION")]
    for info in DRIVERS.values():
        description = info.description
        if missing := info.missing():
            description += f"; needs {', '.join(missing)}"
            if info.extra:
                description += f": pip install 'weft[{info.extra}]'"
        rows.append((info.name, "no" if missing else "yes", description))
    widths = [max(len(row[column]) for row in rows) for column in range(2)]
    for name, available, description in rows:
        print(f"{name:<{widths[0]}}  {available:<{widths[1]}}  {description}")
    return EXIT_OK


# --------------------------------------------------------------- reporting


def describe(exc: BaseException) -> str:
    """One line saying what went wrong, without the ``[Errno 98]`` noise."""
    if isinstance(exc, OSError) and exc.strerror:
        text = exc.strerror
        if exc.filename is not None and str(exc.filename) not in text:
            text += f": {exc.filename}"
        return text
    return str(exc) or type(exc).__name__


def _report(exc: BaseException, verbose: bool) -> None:
    if verbose:
        traceback.print_exception(exc)
    print(f"weft: {describe(exc)}", file=sys.stderr, flush=True)


class _OneLineFormatter(logging.Formatter):
    """``weft: message``, an exception summed up on the same line (tracebacks need -v)."""

    def format(self, record: logging.LogRecord) -> str:
        message = f"weft: {record.getMessage()}"
        if record.exc_info and record.exc_info[1] is not None:
            message += f" ({type(record.exc_info[1]).__name__}: {describe(record.exc_info[1])})"
        return message


def _configure_logging(verbose: bool) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("weft: %(message)s") if verbose else _OneLineFormatter())
    logger = logging.getLogger("weft")
    logger.handlers[:] = [handler]
    logger.setLevel(logging.DEBUG if verbose else logging.INFO)
    logger.propagate = False
