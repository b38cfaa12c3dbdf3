"""The ``weft`` command line (also ``python -m weft``).

::

    weft serve {echo,pubsub,http} [--host H] [--port P | --unix PATH | --stdio]
               [--root DIR] [--tls --cert FILE [--key FILE]] [--driver D] [--grace SECONDS]
               [--max-connections N] [--idle-timeout SECONDS]
    weft serve echo --udp [--host H] [--port P | --unix PATH] [--driver D] [--grace SECONDS]
    weft connect HOST PORT | --unix PATH | --via COMMAND
                 [--tls [--cafile FILE] [--server-name NAME] [--insecure]]
                 [--driver D] [--timeout SECONDS]
    weft drivers

Exit status: 0 for a clean end (a server stopped by SIGINT or SIGTERM
included), 1 when something failed at run time (a port in use, a refused or
reset connection, a timeout), 2 for bad arguments, and 128 + the signal's
number for a ``connect`` ended by a signal.  Failures are one line on stderr;
``-v`` adds the traceback.  See https://github.com/weft-project/weft/blob/main/docs/cli.md.
"""

from __future__ import annotations

import argparse
import logging
import math
import signal
import subprocess
import sys
import threading
import traceback
from collections.abc import Callable, Sequence
from importlib import metadata
from typing import NoReturn

from weft._cli.bridge import StdioBridge
from weft._cli.file_server import FileServer
from weft.drivers._core.futures import Future
from weft.drivers._core.socket_binding import format_address
from weft.drivers._datagram_serving import serve_datagrams
from weft.drivers._registry import DRIVERS, open_runtime
from weft.drivers._runtime import ProtocolFactory, Runtime
from weft.drivers._serving import DEFAULT_GRACE, DEFAULT_HOST, DEFAULT_PORT, serve
from weft.drivers.blocking._sockets import DEFAULT_IDLE_TIMEOUT, DEFAULT_MAX_CONNECTIONS
from weft.protocols._datagram_echo import DatagramEchoProtocol
from weft.protocols._echo import EchoProtocol
from weft.protocols.contract import Transport
from weft.protocols.errors import ArgumentError, WeftError
from weft.protocols.http import HTTPServerProtocol
from weft.protocols.http._busy import busy_response
from weft.protocols.pubsub import PubSubHub, PubSubServerProtocol
from weft.protocols.pubsub.wire import encode_error
from weft.protocols.tls import DEFAULT_HANDSHAKE_TIMEOUT, TLSProtocol, client_context, server_context

__all__ = ["BUSY_REPLIES", "EXIT_FAILURE", "EXIT_OK", "EXIT_USAGE", "build_parser", "describe", "main"]

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
    parser.add_argument(
        "--udp",
        action="store_true",
        help="serve echo over datagrams: UDP on --host/--port, or a UNIX datagram socket with --unix",
    )
    parser.add_argument(
        "--root", metavar="DIR", help="serve http: the directory whose files are served (default: .)"
    )
    tls = parser.add_argument_group("TLS")
    tls.add_argument("--tls", action="store_true", help="serve over TLS (needs --cert)")
    tls.add_argument("--cert", metavar="FILE", help="the server's certificate chain, PEM (may hold the key)")
    tls.add_argument("--key", metavar="FILE", help="the private key, PEM, when not in --cert")
    _add_driver(parser)
    parser.add_argument(
        "--grace",
        type=_seconds(allow_zero=True),
        default=DEFAULT_GRACE,
        metavar="SECONDS",
        help=f"on SIGINT/SIGTERM, how long open connections may finish (default {DEFAULT_GRACE:g})",
    )
    parser.add_argument(
        "--max-connections",
        type=_count,
        metavar="N",
        help="serve at most N connections at once; more get the protocol's busy reply at once "
        f"(default: no limit; {DEFAULT_MAX_CONNECTIONS} on the blocking driver)",
    )
    parser.add_argument(
        "--idle-timeout",
        type=_seconds(allow_zero=True),
        metavar="SECONDS",
        help="--driver blocking only: close a connection with no bytes either way for this long "
        f"(default {DEFAULT_IDLE_TIMEOUT:g}; 0: never)",
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
    parser.add_argument(
        "--via",
        metavar="COMMAND",
        help="run COMMAND (through the shell) and talk over its stdin/stdout instead of a socket",
    )
    tls = parser.add_argument_group("TLS")
    tls.add_argument("--tls", action="store_true", help="speak TLS, verifying the server's certificate")
    tls.add_argument("--cafile", metavar="FILE", help="trust the CAs in FILE instead of the system's")
    tls.add_argument(
        "--server-name", metavar="NAME", help="the name the certificate must carry (default HOST); also SNI"
    )
    tls.add_argument(
        "--insecure", action="store_true", help="do not verify the certificate or name (tests only!)"
    )
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


def _count(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be 1 or more, not {value}")
    return value


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


def _echo(_args: argparse.Namespace) -> ProtocolFactory:
    return EchoProtocol


def _pubsub(_args: argparse.Namespace) -> ProtocolFactory:
    hub = PubSubHub()  # one hub: every connection publishes to every other
    return lambda: PubSubServerProtocol(hub)


def _http(args: argparse.Namespace) -> ProtocolFactory:
    files = FileServer(args.root if args.root is not None else ".")
    return lambda: HTTPServerProtocol(files)


_SERVERS: dict[str, Callable[[argparse.Namespace], ProtocolFactory]] = {
    "echo": _echo,
    "pubsub": _pubsub,
    "http": _http,
}

#: What each protocol answers a connection over --max-connections: HTTP a
#: 503 with Retry-After, the line protocols one ERR line (pub/sub's wire
#: format has them; echo has no format of its own, so it says the same).
BUSY_REPLIES: dict[str, bytes] = {
    "echo": b"ERR server busy\r\n",
    "pubsub": encode_error(b"server busy"),
    "http": busy_response(),
}


def _serve(args: argparse.Namespace) -> int:
    if args.udp:
        return _serve_datagrams(args)
    if args.host is not None and (args.unix is not None or args.stdio):
        args.parser.error("--host goes with --port, not with --unix or --stdio")
    if args.tls and args.cert is None:
        args.parser.error("--tls needs --cert FILE (and --key FILE unless the key is in it)")
    if not args.tls and (args.cert is not None or args.key is not None):
        args.parser.error("--cert and --key go with --tls")
    if args.root is not None and args.protocol != "http":
        args.parser.error("--root goes with serve http")
    if args.stdio and (args.max_connections is not None or args.idle_timeout is not None):
        args.parser.error("--max-connections and --idle-timeout go with --port or --unix, not --stdio")
    if args.idle_timeout is not None and args.driver != "blocking":
        args.parser.error(
            "--idle-timeout goes with --driver blocking (elsewhere an idle connection holds no "
            "thread, and each protocol has its own timeouts)"
        )
    factory = _SERVERS[args.protocol](args)
    # Over TLS a reply would need a handshake first, the very work a server
    # at its limit must not take on: the connection is closed at once instead.
    busy_reply = None if args.tls else BUSY_REPLIES[args.protocol]
    if args.tls:
        factory = _tls_server(factory, args.cert, args.key)
    serve(
        factory,
        host=DEFAULT_HOST if args.host is None else args.host,
        port=args.port,
        unix=args.unix,
        stdio=args.stdio,
        driver=args.driver,
        grace=args.grace,
        max_connections=args.max_connections,
        busy_reply=busy_reply,
        idle_timeout=None if args.idle_timeout is None else args.idle_timeout or math.inf,
    )
    return EXIT_OK


def _serve_datagrams(args: argparse.Namespace) -> int:
    """``weft serve echo --udp``: the datagram echo on one endpoint."""
    if args.protocol != "echo":
        args.parser.error(f"--udp serves echo only ({args.protocol} needs a stream)")
    if args.host is not None and args.unix is not None:
        args.parser.error("--host goes with --port, not with --unix")
    given = [
        option
        for option, value in (
            ("--stdio", args.stdio),
            ("--tls", args.tls),
            ("--root", args.root is not None),
            ("--max-connections", args.max_connections is not None),
            ("--idle-timeout", args.idle_timeout is not None),
        )
        if value
    ]
    if given:
        args.parser.error(f"{', '.join(given)} cannot go with --udp (datagrams have no connections)")
    serve_datagrams(
        DatagramEchoProtocol,
        host=DEFAULT_HOST if args.host is None else args.host,
        port=args.port,
        unix=args.unix,
        driver=args.driver,
        grace=args.grace,
    )
    return EXIT_OK


def _tls_server(factory: ProtocolFactory, cert: str, key: str | None) -> ProtocolFactory:
    """Each connection's protocol behind a TLS layer (the files are read now, once)."""
    context = server_context(cert, key)
    return lambda: TLSProtocol(factory(), context, server_side=True)


def _connect(args: argparse.Namespace) -> int:
    where = [given for given in (args.host is not None, args.unix is not None, args.via is not None) if given]
    if len(where) != 1:
        args.parser.error("give one of HOST PORT, --unix PATH or --via COMMAND")
    if args.host is not None and args.port is None:
        args.parser.error("give HOST PORT, or --unix PATH, or --via COMMAND")
    if not args.tls and (args.cafile or args.server_name or args.insecure):
        args.parser.error("--cafile, --server-name and --insecure go with --tls")
    if args.tls and not args.insecure and args.server_name is None and args.host is None:
        args.parser.error("--tls over --unix or --via needs --server-name NAME (or --insecure)")
    if args.unix is not None:
        target = args.unix
    elif args.via is not None:
        target = f"'{args.via}'"
    else:
        target = format_address((args.host, args.port))
    wrap = _tls_client(args) if args.tls else None
    runtime = open_runtime(args.driver)
    child: subprocess.Popen[bytes] | None = None
    child_status: int | None = None
    try:
        bridge = StdioBridge(runtime, target, idle_timeout=args.timeout)
        network: ProtocolFactory = bridge.network_protocol
        if wrap is not None:
            network = _wrapped(network, wrap)
        limit = {} if args.timeout is None else {"timeout": args.timeout}
        if args.via is not None:
            child, connecting = _via(runtime, network, args.via)
        elif args.unix is not None:
            connecting = runtime.connect_unix(network, args.unix, **limit)
        else:
            connecting = runtime.connect_tcp(network, args.host, args.port, **limit)
        if threading.current_thread() is threading.main_thread():
            # Handled, not fatal: the terminal's stdin must get its mode back.
            for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
                runtime.add_signal_handler(signum, bridge.interrupt, signum)
        bridge.run(connecting)
    finally:
        runtime.close()
        if child is not None:
            child_status = _end_child(child)
    if bridge.interrupted is not None:
        return 128 + bridge.interrupted
    if child_status:  # the session ended cleanly, but the command failed
        raise ChildProcessError(f"{args.via!r} exited with status {child_status}")
    return EXIT_OK


def _tls_client(args: argparse.Namespace) -> Callable[[object], TLSProtocol]:
    """What puts the connection's protocol behind a client TLS layer, per the options."""
    context = client_context(cafile=args.cafile, insecure=args.insecure)
    name = args.server_name if args.server_name is not None else args.host
    timeout = DEFAULT_HANDSHAKE_TIMEOUT if args.timeout is None else args.timeout
    return lambda app: TLSProtocol(
        app, context, server_side=False, server_hostname=name, handshake_timeout=timeout
    )


def _wrapped(factory: ProtocolFactory, wrap: Callable[[object], TLSProtocol]) -> ProtocolFactory:
    return lambda: wrap(factory())


def _via(
    runtime: Runtime, factory: ProtocolFactory, command: str
) -> tuple[subprocess.Popen[bytes], Future[Transport]]:
    """Start ``command`` through the shell (as ssh runs a ProxyCommand) and run
    the connection over its stdin and stdout."""
    if not command.strip():
        raise ArgumentError("--via needs a command")
    child = subprocess.Popen(command, shell=True, stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    if child.stdin is None or child.stdout is None:
        raise RuntimeError("subprocess.Popen gave no pipes")
    transport = runtime.connect_pipes(factory, child.stdout.fileno(), child.stdin.fileno(), close_fds=False)
    connected: Future[Transport] = Future(runtime.call_soon)
    connected.set_result(transport)
    return child, connected


def _end_child(child: subprocess.Popen[bytes]) -> int | None:
    """Close our ends of the child's pipes and give it a moment to exit; end it
    if it does not.  Its exit status, or None if it had to be ended."""
    for pipe in (child.stdin, child.stdout):
        if pipe is not None:
            pipe.close()
    try:
        return child.wait(timeout=2)
    except subprocess.TimeoutExpired:
        child.terminate()
        try:
            child.wait(timeout=2)
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait()
        return None


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
