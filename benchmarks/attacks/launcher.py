"""``weft serve`` with short timeouts, through weft's Python API (for ``--fast`` runs).

The timeouts that end slow clients are a minute by default, so the fast
runs start the server here instead::

    python -m benchmarks.attacks.launcher http --driver reactor --root DIR --timeout 2
    python -m benchmarks.attacks.launcher echo --driver asyncio --tls --cert C --key K --timeout 2

``--timeout`` sets every field of :data:`.settings.SHORTENED_HTTP_LIMITS`
of ``HTTPLimits`` (a field this weft does not have is left out, and a line
on stderr says so) and the TLS handshake timeout.  Like ``weft serve``, it
listens on 127.0.0.1 (``--port``, 0 by default), prints ``listening on ...``
and stops gracefully on SIGTERM.
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import sys
from collections.abc import Sequence

from weft._cli.file_server import FileServer
from weft.drivers import ProtocolFactory, serve
from weft.protocols import EchoProtocol
from weft.protocols.http import HTTPLimits, HTTPServerProtocol
from weft.protocols.pubsub import PubSubHub, PubSubServerProtocol
from weft.protocols.tls import TLSProtocol, server_context

from .settings import SHORTENED_HTTP_LIMITS


def http_limits(timeout: float) -> tuple[HTTPLimits, list[str]]:
    """HTTPLimits with every shortened field at ``timeout``, and the fields this weft lacks."""
    known = {field.name for field in dataclasses.fields(HTTPLimits)}
    given = {name: timeout for name in SHORTENED_HTTP_LIMITS if name in known}
    missing = [name for name in SHORTENED_HTTP_LIMITS if name not in known]
    return HTTPLimits(**given), missing  # type: ignore[arg-type]


def factory_for(args: argparse.Namespace) -> ProtocolFactory:
    """The protocol factory the options ask for."""
    made: ProtocolFactory
    if args.protocol == "echo":
        made = EchoProtocol
    elif args.protocol == "pubsub":
        hub = PubSubHub()
        made = lambda: PubSubServerProtocol(hub)  # noqa: E731
    else:
        limits, missing = http_limits(args.timeout)
        for name in missing:
            print(f"launcher: this weft's HTTPLimits has no {name}; running without it", file=sys.stderr)
        files = FileServer(args.root)
        made = lambda: HTTPServerProtocol(files, limits=limits)  # noqa: E731
    if args.tls:
        context = server_context(args.cert, args.key)
        inner = made
        timeout = args.timeout
        made = lambda: TLSProtocol(inner(), context, server_side=True, handshake_timeout=timeout)  # noqa: E731
    return made


class _OneLine(logging.Formatter):
    """``weft: message (ExceptionType)``, one line per record, as ``weft serve`` logs."""

    def format(self, record: logging.LogRecord) -> str:
        message = f"weft: {record.getMessage()}"
        if record.exc_info and record.exc_info[1] is not None:
            message += f" ({type(record.exc_info[1]).__name__}: {record.exc_info[1]})"
        return message


def log_like_weft_serve() -> None:
    """Log weft's records on stderr, one line each, from INFO up (as ``weft serve`` does)."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(_OneLine())
    logger = logging.getLogger("weft")
    logger.handlers[:] = [handler]
    logger.setLevel(logging.INFO)
    logger.propagate = False


def main(argv: Sequence[str] | None = None) -> None:
    """Parse the options and serve until SIGTERM."""
    parser = argparse.ArgumentParser(prog="launcher", description=__doc__.splitlines()[0])
    parser.add_argument("protocol", choices=("echo", "pubsub", "http"))
    parser.add_argument("--driver", default="reactor")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--root", default=".")
    parser.add_argument("--timeout", type=float, default=2.0, help="head, body and handshake timeouts")
    parser.add_argument("--grace", type=float, default=5.0)
    parser.add_argument("--tls", action="store_true")
    parser.add_argument("--cert")
    parser.add_argument("--key")
    args = parser.parse_args(argv)
    log_like_weft_serve()
    serve(factory_for(args), port=args.port, driver=args.driver, grace=args.grace)


if __name__ == "__main__":
    main()
