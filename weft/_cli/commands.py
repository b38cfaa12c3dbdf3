"""The ``weft`` command line (also ``python -m weft``).

::

    weft serve {echo,pubsub,http} | MODULE:FACTORY | --factory MODULE:FACTORY [--app-dir DIR]
               [--host H] [--port P | --unix PATH | --stdio] [--root DIR] [--no-access-log]
               [--tls --cert FILE [--key FILE] [--client-ca FILE [--require-client-cert]]
                      [--alpn PROTO[,PROTO]]]
               [--driver D] [--grace SECONDS] [--max-connections N] [--idle-timeout SECONDS]
    weft serve echo --udp [--host H] [--port P | --unix PATH] [--driver D] [--grace SECONDS]
    weft connect HOST PORT | --unix PATH | --via COMMAND | --listen [HOST] PORT | --listen --unix PATH
                 [--tls [--cafile FILE] [--server-name NAME] [--insecure]
                        [--client-cert FILE [--client-key FILE]] [--alpn PROTO[,PROTO]]]
                 [--crlf] [--driver D] [--timeout SECONDS]
    weft drivers

    and on every command: [-q | -v | -vv] [--log-level L] [--log-file FILE] [--log-format text|json]

Exit status: 0 for a clean end (a server stopped by SIGINT, SIGTERM or
SIGHUP included), 1 when something failed at run time (a port in use, a
refused or reset connection, a timeout), 2 for bad arguments (a TLS file or
a MODULE:FACTORY that cannot be used included), 128 + the signal's number
for a ``connect`` ended by a signal, and 141 (128 + SIGPIPE) for one whose
stdout's reader went away.  Failures are one line on stderr; ``-v`` adds
the traceback.  See https://github.com/weft-project/weft/blob/main/docs/cli.md.
"""

from __future__ import annotations

import argparse
import errno
import logging
import math
import signal
import ssl
import subprocess
import sys
import threading
from collections.abc import Callable, Sequence
from functools import partial
from importlib import metadata
from typing import Any, NoReturn

from weft._cli import factories, logs
from weft._cli.bridge import StdioBridge
from weft._cli.factories import is_spec
from weft._cli.file_server import FileServer
from weft._cli.logs import describe
from weft._cli.tls_options import cli_client_context, cli_server_context, parse_alpn, session_lines
from weft.drivers._core import accelerator
from weft.drivers._core.futures import Future
from weft.drivers._core.socket_binding import format_address
from weft.drivers._datagram_serving import serve_datagrams
from weft.drivers._registry import AUTO, DRIVERS, auto_driver, open_runtime
from weft.drivers._runtime import ProtocolFactory, Runtime
from weft.drivers._serving import (
    DEFAULT_GRACE,
    DEFAULT_HOST,
    DEFAULT_PORT,
    Server,
    announce,
    in_context,
    serve,
)
from weft.drivers.blocking._sockets import DEFAULT_IDLE_TIMEOUT, DEFAULT_MAX_CONNECTIONS
from weft.drivers.coroutines import Stream
from weft.drivers.coroutines._streams import StreamHandler
from weft.protocols._datagram_echo import DatagramEchoProtocol
from weft.protocols._echo import EchoProtocol
from weft.protocols.contract import Transport
from weft.protocols.errors import ArgumentError, WeftError
from weft.protocols.http import AccessLog, HTTPServerProtocol
from weft.protocols.http._busy import busy_response
from weft.protocols.pubsub import PubSubHub, PubSubServerProtocol
from weft.protocols.pubsub.wire import encode_error
from weft.protocols.tls import DEFAULT_HANDSHAKE_TIMEOUT, TLSError, TLSProtocol

__all__ = ["BUSY_REPLIES", "EXIT_FAILURE", "EXIT_OK", "EXIT_USAGE", "build_parser", "describe", "main"]

logger = logging.getLogger("weft._cli")

EXIT_OK = 0
#: Something failed at run time: a port in use, a refused connection...
EXIT_FAILURE = 1
#: Bad arguments (argparse's status too).
EXIT_USAGE = 2


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; return the exit status."""
    args = build_parser().parse_args(argv)
    settings = logs.settings_from(args)
    try:
        log = logs.configure(settings)
    except ArgumentError as exc:
        print(f"weft: {describe(exc)}", file=sys.stderr, flush=True)
        return EXIT_USAGE
    args.logging = settings
    try:
        status: int = args.run(args)
    except ArgumentError as exc:
        log.report(exc)
        return EXIT_USAGE
    except (OSError, WeftError) as exc:
        log.report(exc)
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
    logs.add_logging_options(parser, top=True)
    parser.set_defaults(run=lambda _args: parser.error("choose a command: serve, connect or drivers"))
    commands = parser.add_subparsers(title="commands", metavar="COMMAND")
    _add_serve(commands)
    _add_connect(commands)
    drivers = commands.add_parser("drivers", help="list the drivers and whether each can run here")
    logs.add_logging_options(drivers, top=False)
    drivers.set_defaults(run=_drivers)
    return parser


def _add_serve(commands: argparse._SubParsersAction[_Parser]) -> None:
    parser = commands.add_parser("serve", help="serve a protocol until SIGINT, SIGTERM or SIGHUP")
    parser.add_argument(
        "protocol",
        nargs="?",
        metavar="{echo,pubsub,http} | MODULE:FACTORY",
        help="what to serve: a built-in protocol, or your own: a protocol class or factory, "
        "or an async def stream handler, as MODULE:NAME (like uvicorn's mod:app)",
    )
    parser.add_argument(
        "--factory", metavar="MODULE:FACTORY", help="serve your own protocol (the same as giving it first)"
    )
    parser.add_argument(
        "--app-dir",
        metavar="DIR",
        help="with MODULE:FACTORY: the directory MODULE is imported from first (default: .)",
    )
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
    parser.add_argument(
        "--no-access-log",
        action="store_true",
        help="serve http: write no access log (by default a Common Log Format line per response, on stderr)",
    )
    tls = parser.add_argument_group("TLS")
    tls.add_argument("--tls", action="store_true", help="serve over TLS (needs --cert)")
    tls.add_argument("--cert", metavar="FILE", help="the server's certificate chain, PEM (may hold the key)")
    tls.add_argument("--key", metavar="FILE", help="the private key, PEM, when not in --cert")
    tls.add_argument(
        "--client-ca",
        metavar="FILE",
        help="verify client certificates against the CAs in FILE (optional for clients, "
        "unless --require-client-cert)",
    )
    tls.add_argument(
        "--require-client-cert",
        action="store_true",
        help="refuse clients without a certificate signed by --client-ca (mutual TLS)",
    )
    _add_alpn(tls)
    _add_driver(parser)
    parser.add_argument(
        "--grace",
        type=_seconds(allow_zero=True),
        default=DEFAULT_GRACE,
        metavar="SECONDS",
        help=f"on SIGINT/SIGTERM/SIGHUP, how long open connections may finish (default {DEFAULT_GRACE:g})",
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
    logs.add_logging_options(parser, top=False)
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
    parser.add_argument(
        "-l",
        "--listen",
        action="store_true",
        help="listen on [HOST] PORT (host 127.0.0.1 by default) or --unix PATH instead, accept one "
        "connection and bridge it (as ncat -l)",
    )
    parser.add_argument(
        "-C",
        "--crlf",
        action="store_true",
        help="send each LF read from stdin as CRLF (as ncat -C), for line protocols that want it",
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
    tls.add_argument("--client-cert", metavar="FILE", help="present this certificate chain, PEM (mutual TLS)")
    tls.add_argument("--client-key", metavar="FILE", help="its private key, PEM, when not in --client-cert")
    _add_alpn(tls)
    _add_driver(parser)
    parser.add_argument(
        "--timeout",
        type=_seconds(allow_zero=False),
        metavar="SECONDS",
        help="give up connecting, or end a session with nothing sent either way, after this long",
    )
    logs.add_logging_options(parser, top=False)
    parser.set_defaults(run=_connect, parser=parser)


def _add_alpn(group: argparse._ArgumentGroup) -> None:
    group.add_argument(
        "--alpn",
        metavar="PROTO[,PROTO]",
        type=_alpn,
        help="the application protocols offered (client) or accepted (server), by preference: h2,http/1.1",
    )


def _alpn(text: str) -> list[str]:
    try:
        return parse_alpn(text)
    except ArgumentError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _add_driver(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--driver",
        choices=[*DRIVERS, AUTO],
        default="reactor",
        help=f"the driver to run on (default reactor; {AUTO}: the best that runs here)",
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
    # Off, the server holds no access log at all: not one call per response.
    access_log = None if args.no_access_log else AccessLog()
    return lambda: HTTPServerProtocol(files, access_log=access_log)


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


def _what_to_serve(args: argparse.Namespace) -> tuple[str, str | None]:
    """The built-in protocol's name, or ``("", spec)`` for ``MODULE:FACTORY``."""
    named, spec = args.protocol, args.factory
    if named is not None and spec is not None:
        _usage(args, f"give {named!r} or --factory {spec}, not both")
    if spec is not None:
        return "", spec
    if named is None:
        _usage(args, "say what to serve: echo, pubsub, http, or MODULE:FACTORY")
    if named in _SERVERS:
        return named, None
    if is_spec(named):
        return "", named
    return _usage(
        args, f"unknown protocol {named!r}: choose echo, pubsub or http, or give your own as MODULE:FACTORY"
    )


def _usage(args: argparse.Namespace, message: str) -> NoReturn:
    """A usage error of the sub-command: one line, exit 2."""
    parser: argparse.ArgumentParser = args.parser
    parser.error(message)


def _serve(args: argparse.Namespace) -> int:
    protocol, spec = _what_to_serve(args)
    args.protocol = protocol or spec
    if spec is None and args.app_dir is not None:
        args.parser.error("--app-dir goes with MODULE:FACTORY")
    tls_only = [
        option
        for option, given in (
            ("--client-ca", args.client_ca is not None),
            ("--require-client-cert", args.require_client_cert),
            ("--alpn", args.alpn is not None),
        )
        if given
    ]
    if tls_only and not args.tls:
        args.parser.error(f"{', '.join(tls_only)} go{'es' if len(tls_only) == 1 else ''} with --tls")
    if args.require_client_cert and args.client_ca is None:
        args.parser.error(
            "--require-client-cert needs --client-ca FILE (the CAs that sign client certificates)"
        )
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
    if args.no_access_log and args.protocol != "http":
        args.parser.error("--no-access-log goes with serve http")
    if args.stdio and (args.max_connections is not None or args.idle_timeout is not None):
        args.parser.error("--max-connections and --idle-timeout go with --port or --unix, not --stdio")
    if args.idle_timeout is not None and args.driver != "blocking":
        args.parser.error(
            "--idle-timeout goes with --driver blocking (elsewhere an idle connection holds no "
            "thread, and each protocol has its own timeouts)"
        )
    # The files are read now, once: a mistake in one is a usage error before anything listens.
    context = (
        cli_server_context(
            args.cert,
            args.key,
            client_ca=args.client_ca,
            require_client_cert=args.require_client_cert,
            alpn=args.alpn or (),
        )
        if args.tls
        else None
    )
    served: ProtocolFactory | StreamHandler
    if spec is not None:
        served = _own(spec, args, context)
        busy_reply = None  # a protocol of the user's has no busy reply weft could know
    else:
        factory = _SERVERS[protocol](args)
        # Over TLS a reply would need a handshake first, the very work a server
        # at its limit must not take on: the connection is closed at once instead.
        busy_reply = None if context is not None else BUSY_REPLIES[protocol]
        served = _tls_server(factory, context, args.alpn or ()) if context is not None else factory
    serve(
        served,
        on_ready=_announce_urls("https" if args.tls else "http") if protocol == "http" else announce,
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


def _announce_urls(scheme: str) -> Callable[[Server], None]:
    """``serve http``'s ready line: each TCP address as a URL a person can
    click (``listening on http://127.0.0.1:8000/``), a UNIX socket's path as it is."""

    def announce_urls(server: Server) -> None:
        addresses = [
            f"{scheme}://{text}/" if isinstance(address, tuple) else text
            for listener in server.listeners
            for address in listener.addresses
            if (text := format_address(address))
        ]
        if addresses:
            print("listening on " + ", ".join(addresses), file=sys.stderr, flush=True)

    return announce_urls


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


def _own(
    spec: str, args: argparse.Namespace, context: ssl.SSLContext | None
) -> ProtocolFactory | StreamHandler:
    """What ``MODULE:FACTORY`` names, ready to serve (behind TLS with --tls)."""
    loaded = factories.load(spec, args.app_dir)
    logger.debug(
        "serving %s, %s",
        spec,
        "an async def stream handler: awaited with a stream, one task per connection"
        if loaded.is_stream_handler
        else "a protocol factory: called once per connection",
    )
    if loaded.is_stream_handler:
        handler: StreamHandler = loaded.target
        return _tls_stream_handler(handler, context, args.alpn or ()) if context is not None else handler
    factory = loaded.protocol_factory()
    return _tls_server(factory, context, args.alpn or ()) if context is not None else factory


def _tls_stream_handler(
    handler: StreamHandler, context: ssl.SSLContext, alpn: Sequence[str]
) -> StreamHandler:
    """``handler`` behind a TLS layer: each stream starts TLS before the handler sees it."""

    async def over_tls(stream: Stream) -> None:
        try:
            await stream.start_tls(context, server_side=True)
        except TLSError:
            return  # the TLS layer has logged why; the stream is gone
        if logger.isEnabledFor(logging.DEBUG):
            _log_server_session(stream, alpn)
        await handler(stream)

    return over_tls


def _tls_server(factory: ProtocolFactory, context: ssl.SSLContext, alpn: Sequence[str]) -> ProtocolFactory:
    """Each connection's protocol behind a TLS layer."""
    # Decided once: with debug off, a handshake costs no logging call at all.
    hook = partial(_log_server_session, alpn=alpn) if logger.isEnabledFor(logging.DEBUG) else None
    return lambda: TLSProtocol(factory(), context, server_side=True, on_handshake=hook)


def _log_server_session(transport: Any, alpn: Sequence[str] = ()) -> None:
    """At debug level, one line per TLS connection: version, cipher, ALPN, the client's certificate."""
    session, alpn_line, *certificate = session_lines(transport, alpn=alpn, server_side=True)
    client = "no client certificate"
    if transport.get_extra_info("peercert"):  # verified: its subject is the first line of the rest
        client = certificate[0].replace("TLS peer certificate subject:", "client certificate")
    logger.debug("%s; %s; %s", session, alpn_line.removeprefix("TLS "), client)


def _connect(args: argparse.Namespace) -> int:
    if args.listen:
        _check_listen(args)
    where = [given for given in (args.host is not None, args.unix is not None, args.via is not None) if given]
    if len(where) != 1:
        args.parser.error("give one of HOST PORT, --unix PATH or --via COMMAND")
    if args.host is not None and args.port is None:
        args.parser.error("give HOST PORT, or --unix PATH, or --via COMMAND")
    tls_only = [
        option
        for option, given in (
            ("--cafile", args.cafile is not None),
            ("--server-name", args.server_name is not None),
            ("--insecure", args.insecure),
            ("--client-cert", args.client_cert is not None),
            ("--client-key", args.client_key is not None),
            ("--alpn", args.alpn is not None),
        )
        if given
    ]
    if tls_only and not args.tls:
        args.parser.error(f"{', '.join(tls_only)} go{'es' if len(tls_only) == 1 else ''} with --tls")
    if args.client_key is not None and args.client_cert is None:
        args.parser.error("--client-key goes with --client-cert")
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
        bridge = StdioBridge(runtime, target, idle_timeout=args.timeout, crlf=args.crlf)
        network: ProtocolFactory = bridge.network_protocol
        if wrap is not None:
            network = _wrapped(network, wrap)
        limit = {} if args.timeout is None else {"timeout": args.timeout}
        if threading.current_thread() is threading.main_thread():
            # Handled, not fatal: the terminal's stdin must get its mode back.
            # Set before --listen announces its address: whoever reads that
            # line may signal at once, and a signal the process ignores (a
            # shell's background job ignores SIGINT) would be lost.
            for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
                runtime.add_signal_handler(signum, bridge.interrupt, signum)
        if args.listen:
            connecting = _listen_once(runtime, bridge, args)
        elif args.via is not None:
            child, connecting = _via(runtime, network, args.via)
        elif args.unix is not None:
            connecting = runtime.connect_unix(network, args.unix, **limit)
        else:
            connecting = runtime.connect_tcp(network, args.host, args.port, **limit)
        bridge.run(connecting)
    finally:
        runtime.close()
        if child is not None:
            child_status = _end_child(child)
    if bridge.interrupted is not None:
        return 128 + bridge.interrupted
    if bridge.stdout_broken:
        # As `cat` ends when its reader has gone: the status a shell shows
        # for a program killed by SIGPIPE, and no message.  (Not SIG_DFL for
        # SIGPIPE itself: a send on a reset socket would then kill weft
        # before it could report the reset.)
        return 128 + signal.SIGPIPE
    if child_status:  # the session ended cleanly, but the command failed
        raise ChildProcessError(f"{args.via!r} exited with status {child_status}")
    return EXIT_OK


def _check_listen(args: argparse.Namespace) -> None:
    """``--listen [HOST] PORT`` or ``--listen --unix PATH``; a lone positional is the port."""
    if args.via is not None:
        _usage(args, "--listen goes with [HOST] PORT or --unix PATH, not --via")
    if args.tls:
        _usage(args, "--listen does not speak TLS (weft serve --tls does)")
    if args.host is not None and args.port is None:
        try:
            args.port = _port(args.host)
        except argparse.ArgumentTypeError as exc:
            _usage(args, f"--listen: {exc}")
        args.host = DEFAULT_HOST
    if args.host is None and args.unix is None:
        _usage(args, "--listen needs a PORT (or HOST PORT, or --unix PATH)")


def _listen_once(runtime: Runtime, bridge: StdioBridge, args: argparse.Namespace) -> Future[Transport]:
    """Listen, say where on stderr, and accept one connection (as ``ncat -l``):
    the future of it.  The listener closes once it is in; ``--timeout``
    bounds the wait for it."""
    factory, accepted = bridge.accept_one()
    asked = args.unix if args.unix is not None else format_address((args.host or "*", args.port))
    try:
        if args.unix is not None:
            listener = runtime.listen_unix(factory, args.unix)
        else:
            listener = runtime.listen_tcp(factory, args.host, args.port)
    except OSError as exc:
        raise in_context(exc, f"cannot listen on {asked}") from exc
    where = ", ".join(format_address(address) for address in listener.addresses)
    print(f"listening on {where}", file=sys.stderr, flush=True)

    def in_(future: Future[Transport]) -> None:
        listener.close()
        if future.exception() is None:
            peer = future.result().get_extra_info("peername")
            bridge.target = format_address(peer) if peer else where

    accepted.add_done_callback(in_)
    if args.timeout is not None:
        timeout: float = args.timeout

        def give_up() -> None:
            if not accepted.done():
                accepted.set_exception(
                    TimeoutError(errno.ETIMEDOUT, f"nobody connected to {where} within {timeout:g} s")
                )

        runtime.call_later(timeout, give_up)
    return accepted


def _tls_client(args: argparse.Namespace) -> Callable[[object], TLSProtocol]:
    """What puts the connection's protocol behind a client TLS layer, per the options."""
    context = cli_client_context(
        cafile=args.cafile,
        insecure=args.insecure,
        client_cert=args.client_cert,
        client_key=args.client_key,
        alpn=args.alpn or (),
    )
    offered: list[str] = args.alpn or []

    def describe_session(transport: Any) -> None:
        for line in session_lines(transport, alpn=offered):
            logger.debug("%s", line)

    hook = describe_session if logger.isEnabledFor(logging.DEBUG) else None
    name = args.server_name if args.server_name is not None else args.host
    timeout = DEFAULT_HANDSHAKE_TIMEOUT if args.timeout is None else args.timeout
    return lambda app: TLSProtocol(
        app, context, server_side=False, server_hostname=name, handshake_timeout=timeout, on_handshake=hook
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
        refusal = info.unavailable_reason()
        if missing := info.missing():
            description += f"; needs {', '.join(missing)}"
            if info.extra:
                description += f": pip install 'weft[{info.extra}]'"
        elif refusal is not None:
            # Installed, but the system refuses it (io_uring disabled): why, in one line.
            description += f"; {refusal.removeprefix(f'the {info.name} driver ')}"
        if info.name == "reactor":
            # Which system calls move its bytes: the C accelerator's, or os's.
            description += f"; {accelerator.describe()}"
        elif info.name == "completion" and refusal is None and not missing:
            # Whose loop it runs: the C accelerator's, or Python's.
            description += f"; {accelerator.describe_completion()}"
        rows.append((info.name, "yes" if refusal is None else "no", description))
    rows.append((AUTO, "yes", f"the best driver that runs here: {auto_driver()}"))
    widths = [max(len(row[column]) for row in rows) for column in range(2)]
    for name, available, description in rows:
        print(f"{name:<{widths[0]}}  {available:<{widths[1]}}  {description}")
    return EXIT_OK
