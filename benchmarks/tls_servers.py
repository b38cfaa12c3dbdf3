"""The TLS servers ``tls_bulk.py`` compares, each run as a script in its own process.

Run as a script, it is one server::

    python benchmarks/tls_servers.py weft-reactor --cert DIR --cpu 0

It listens on a free loopback port with TLS, the certificate and key read
from ``DIR/server.pem`` (``tls_bulk.py`` makes them with trustme at run
time), prints ``READY <port> <pid>`` on stdout and serves until it is sent
SIGTERM (as ``servers.py`` does, whose :class:`~servers.ServerProcess`
starts and stops it).  Every server runs the same application protocol,
:class:`BulkServer`, written to asyncio's protocol API (which weft's TLS
transport has too), so only the TLS under it differs.  The kinds:

* ``weft-<driver>``: weft's TLS layer (:class:`weft.protocols.tls.TLSProtocol`)
  over the driver's TCP transport, through ``open_runtime(driver)``, for
  ``reactor`` (in a default run), ``asyncio`` and ``uvloop`` when asked for;
* ``asyncio``: ``loop.create_server(..., ssl=context)`` on asyncio's default
  loop, that is asyncio's ``sslproto``: the baseline every ratio is taken
  against;
* ``uvloop``: the same call on uvloop, whose TLS is its own (Cython) copy of
  that protocol;
* ``weft-loop``: the same call on weft's asyncio event loop
  (``weft.drivers.reactor.new_event_loop``), whose ``ssl=`` is asyncio's
  ``sslproto`` over the reactor's transports.

Every server's context is the same: :func:`server_context`, TLS 1.3 only.
"""

from __future__ import annotations

import argparse
import os
import signal
import ssl
from collections.abc import Callable, Sequence
from importlib.util import find_spec
from pathlib import Path
from typing import Any

import servers

#: What a server sends, ``--chunk`` bytes at a time.
DEFAULT_CHUNK = 64 * 1024
#: The drivers weft's TLS layer can be measured on here (the reactor by default).
WEFT_DRIVERS = ("reactor", "asyncio", "uvloop")


def server_kinds() -> list[servers.ServerKind]:
    """Every TLS server kind that can run here: weft's first, then the asyncio loops'."""
    from weft.drivers import DRIVERS

    kinds = [
        servers.ServerKind(
            f"weft-{name}",
            f"weft.protocols.tls.TLSProtocol over the {name} driver's TCP transport",
            None,
            name == "reactor",
        )
        for name in WEFT_DRIVERS
        if name in DRIVERS and DRIVERS[name].available()
    ]
    kinds.append(
        servers.ServerKind("asyncio", "create_server(ssl=...) on asyncio's default loop", None, True)
    )
    if find_spec("uvloop") is not None:
        kinds.append(servers.ServerKind("uvloop", "create_server(ssl=...) on uvloop", None, True))
    kinds.append(
        servers.ServerKind(
            "weft-loop", "create_server(ssl=...) on weft's asyncio loop (asyncio's sslproto)", None, True
        )
    )
    return kinds


def server_context(cert_dir: Path) -> ssl.SSLContext:
    """The one server context every kind uses: TLS 1.3 only, the chain and key in ``server.pem``."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = context.maximum_version = ssl.TLSVersion.TLSv1_3
    context.load_cert_chain(cert_dir / "server.pem")
    return context


# ------------------------------------------------------------- the protocol


class BulkServer:
    """The application every server runs: a command line, then bulk bytes either way.

    * ``RECV <n>\\n``: count ``n`` bytes from the client, then answer ``DONE\\n``;
    * ``SEND <n>\\n``: send ``n`` bytes, ``chunk`` at a time, honouring
      ``pause_writing``/``resume_writing``;
    * ``PING\\n``: answer ``PONG\\n`` and close (the handshake benchmark).

    Commands follow one another on a connection.  asyncio's protocol API,
    which weft's TLS transport speaks too.
    """

    def __init__(self, chunk: bytes) -> None:
        self._chunk = chunk
        self._transport: Any = None
        self._line = b""
        self._receiving = 0  # bytes still to count
        self._sending = 0  # bytes still to send
        self._paused = False

    def connection_made(self, transport: Any) -> None:
        """Keep the transport."""
        self._transport = transport

    def data_received(self, data: bytes) -> None:
        """Count bytes, or read a command."""
        if self._receiving:
            if len(data) < self._receiving:
                self._receiving -= len(data)
                return
            data = data[self._receiving :]
            self._receiving = 0
            self._transport.write(b"DONE\n")
        if data:
            self._command(data)

    def _command(self, data: bytes) -> None:
        line, newline, rest = (self._line + data).partition(b"\n")
        if not newline:
            self._line = line
            return
        self._line = b""
        verb, _, count = line.partition(b" ")
        if verb == b"RECV":
            self._receiving = int(count)
            if rest:
                self.data_received(rest)
        elif verb == b"SEND":
            self._sending = int(count)
            self._send_more()
        elif verb == b"PING":
            self._transport.write(b"PONG\n")
            self._transport.close()
        else:
            raise ValueError(f"unknown command {line!r}")

    def _send_more(self) -> None:
        chunk, write = self._chunk, self._transport.write
        while self._sending and not self._paused:
            if self._sending >= len(chunk):
                write(chunk)
                self._sending -= len(chunk)
            else:
                write(chunk[: self._sending])
                self._sending = 0

    def pause_writing(self) -> None:
        """Stop sending until resume_writing."""
        self._paused = True

    def resume_writing(self) -> None:
        """Send on."""
        self._paused = False
        self._send_more()

    def eof_received(self) -> bool:
        """Close at the end of the stream."""
        return False

    def connection_lost(self, exc: BaseException | None) -> None:
        """Drop the transport."""
        self._transport = None


# ------------------------------------------------------------------ servers


def serve_weft(driver: str, context: ssl.SSLContext, chunk: bytes, ready: Callable[[int], None]) -> None:
    """weft's TLS layer over the driver's TCP transport."""
    from weft.drivers import open_runtime
    from weft.protocols.tls import TLSProtocol

    runtime = open_runtime(driver)
    listener = runtime.listen_tcp(
        lambda: TLSProtocol(BulkServer(chunk), context, server_side=True), servers.HOST, 0
    )
    ready(int(listener.addresses[0][1]))
    runtime.run()


def serve_loop(
    loop_factory: Callable[[], Any], context: ssl.SSLContext, chunk: bytes, ready: Callable[[int], None]
) -> None:
    """``create_server(ssl=context)`` on the loop ``loop_factory`` makes."""
    import asyncio

    loop = loop_factory()
    asyncio.set_event_loop(loop)
    server = loop.run_until_complete(
        loop.create_server(lambda: BulkServer(chunk), servers.HOST, 0, ssl=context)  # type: ignore[arg-type, return-value]
    )
    ready(int(server.sockets[0].getsockname()[1]))
    loop.run_forever()


def serve(kind: str, context: ssl.SSLContext, chunk: bytes, ready: Callable[[int], None]) -> None:
    """Run the server called ``kind`` (see :func:`server_kinds`)."""
    if kind == "asyncio":
        import asyncio

        serve_loop(asyncio.new_event_loop, context, chunk, ready)
    elif kind == "uvloop":
        import uvloop

        serve_loop(uvloop.new_event_loop, context, chunk, ready)
    elif kind == "weft-loop":
        from weft.drivers.reactor import new_event_loop

        serve_loop(new_event_loop, context, chunk, ready)
    elif kind.startswith("weft-") and kind.removeprefix("weft-") in WEFT_DRIVERS:
        serve_weft(kind.removeprefix("weft-"), context, chunk, ready)
    else:
        raise SystemExit(f"unknown server kind {kind!r}")


def main(argv: Sequence[str] | None = None) -> None:
    """Run one server (the child side of :class:`servers.ServerProcess`)."""
    parser = argparse.ArgumentParser(description="Run one benchmark TLS server on loopback.")
    parser.add_argument("kind")
    parser.add_argument("--cert", required=True, type=Path, help="the directory holding server.pem")
    parser.add_argument("--chunk", type=int, default=DEFAULT_CHUNK, help="bytes per write when sending")
    parser.add_argument("--cpu", type=int, help="pin the server to this core")
    parser.add_argument(
        "--fresh-malloc", action="store_true", help="skip servers.settle_allocator(): keep a fresh malloc"
    )
    args = parser.parse_args(argv)
    if args.cpu is not None:
        os.sched_setaffinity(0, {args.cpu})
    if not args.fresh_malloc:
        servers.settle_allocator()
    signal.signal(signal.SIGINT, signal.SIG_DFL)

    def ready(port: int) -> None:
        print(f"READY {port} {os.getpid()}", flush=True)

    serve(args.kind, server_context(args.cert), b"x" * args.chunk, ready)


if __name__ == "__main__":
    main()
