"""The HTTP servers ``http_load.py`` compares, each run as a script in its own process.

Run as a script, it is one server::

    python benchmarks/http_servers.py weft-reactor-files --root DIR --cpu 0

It listens on a free loopback port, prints ``READY <port> <pid>`` on stdout
and serves until it is sent SIGTERM (as ``servers.py`` does, whose
:class:`~servers.ServerProcess` starts and stops it).  Every server answers
``GET /hello.txt`` with 200 and the same 13 bytes, keep-alive, with the
headers ``content-type: text/plain`` and ``content-length: 13`` (the file
server adds ``last-modified``); none sends a ``Date``.  The kinds:

* ``weft-<driver>-files`` for every driver the registry says can run here:
  exactly what ``weft serve http --root DIR --driver <driver>`` runs,
  ``HTTPServerProtocol(FileServer(DIR))`` through :func:`weft.drivers.serve`,
  with ``DIR/hello.txt`` holding the 13 bytes;
* ``weft-<driver>-hello``: ``HTTPServerProtocol`` with a handler that
  answers from memory (the protocol's cost without the file server's);
* ``h11-asyncio``: a minimal h11 server, an ``asyncio.Protocol`` on asyncio's
  default loop: the baseline every ratio is taken against;
* ``h11-uvloop``: the same protocol on uvloop, when uvloop is installed;
* ``twisted-web``: twisted.web's ``Site`` on Twisted's default (epoll)
  reactor with a ``Resource`` answering from memory and no access log
  (``Site.log`` does nothing): the baseline every ratio is taken against;
* ``twisted-web-files``: the same ``Site`` serving ``DIR`` with
  ``twisted.web.static.File``, no access log;
* ``uvicorn-h11`` and ``uvicorn-httptools``: uvicorn with each of its
  parsers, a bare ASGI app answering from memory, its default loop (uvloop
  when installed), no access log, no ``Server`` header.

A peer whose package is not installed is left out of the run, with a line
saying which package it needs (:func:`missing_peers`).
"""

from __future__ import annotations

import argparse
import os
import signal
from collections.abc import Callable, Sequence
from importlib.util import find_spec
from typing import Any, cast

import servers

#: The body every server sends, and the file the file server serves.
BODY = b"Hello, World!"
FILE_NAME = "hello.txt"
PATH = f"/{FILE_NAME}"


def server_kinds() -> list[servers.ServerKind]:
    """Every HTTP server kind that can run here: weft's (files, then hello, per driver), then h11's."""
    from weft.drivers import DRIVERS

    kinds = []
    for name, info in DRIVERS.items():
        if not info.available():
            continue
        peer = f"h11-{name}" if name in ("asyncio", "uvloop") else None
        kinds.append(
            servers.ServerKind(
                f"weft-{name}-files", f"weft serve http --root DIR --driver {name}", peer, True
            )
        )
        kinds.append(
            servers.ServerKind(
                f"weft-{name}-hello",
                f"weft HTTPServerProtocol, a handler answering from memory, {name}",
                peer,
                True,
            )
        )
    kinds.append(
        servers.ServerKind("h11-asyncio", "a minimal h11 asyncio.Protocol, default loop", None, True)
    )
    if find_spec("uvloop") is not None:
        kinds.append(servers.ServerKind("h11-uvloop", "the same h11 asyncio.Protocol on uvloop", None, True))
    for name, description in PEERS.items():
        if not _missing(name):
            kinds.append(servers.ServerKind(name, description, None, True))
    return kinds


#: The peers from other projects, and what each says of itself.
PEERS = {
    "twisted-web": "twisted.web Site, a Resource answering from memory, no access log",
    "twisted-web-files": "twisted.web Site serving DIR with static.File, no access log",
    "uvicorn-h11": "uvicorn --http h11, a bare ASGI app answering from memory, no access log",
    "uvicorn-httptools": "uvicorn --http httptools, the same app, no access log",
}

#: The packages each peer needs.
_NEEDS = {
    "twisted-web": ("twisted",),
    "twisted-web-files": ("twisted",),
    "uvicorn-h11": ("uvicorn", "h11"),
    "uvicorn-httptools": ("uvicorn", "httptools"),
}


def _missing(kind: str) -> list[str]:
    return [package for package in _NEEDS.get(kind, ()) if find_spec(package) is None]


def missing_peers() -> list[str]:
    """One line per peer that cannot run here, naming the package it needs."""
    return [
        f"{kind}: skipped, needs {', '.join(missing)} (pip install {' '.join(missing)})"
        for kind in PEERS
        if (missing := _missing(kind))
    ]


# ------------------------------------------------------------------ servers


def serve_weft(driver: str, handler_name: str, root: str, ready: Callable[[int], None]) -> None:
    """weft's HTTP server through :func:`weft.drivers.serve`, as ``weft serve http`` runs it."""
    from weft._cli.file_server import FileServer
    from weft.drivers import serve
    from weft.protocols.http import HTTPServerProtocol, Request, ResponseWriter

    if handler_name == "files":
        handler: Any = FileServer(root)  # what the command line's `serve http` builds
    else:

        def handler(request: Request, response: ResponseWriter) -> None:
            response.send(200, {"content-type": "text/plain"}, BODY)

    serve(
        lambda: HTTPServerProtocol(handler),
        host=servers.HOST,
        port=0,
        driver=driver,
        on_ready=lambda server: ready(int(server.port or 0)),
    )


def serve_h11(loop_factory: Callable[[], Any], ready: Callable[[int], None]) -> None:
    """A minimal, correct h11 server on an asyncio loop: 200 and :data:`BODY` to every request.

    Keep-alive and pipelining as h11 allows (each request's answer goes out
    as one write, then the next cycle starts); a request body is read and
    ignored; it closes when h11 says the connection must close, on the
    client's EOF, and on bytes that are not HTTP.  No limits or timeouts:
    the floor for an h11-based server, not a server to deploy.
    """
    import asyncio

    import h11

    headers = [(b"content-type", b"text/plain"), (b"content-length", b"%d" % len(BODY))]

    class HelloH11(asyncio.Protocol):
        transport: asyncio.Transport
        connection: h11.Connection

        def connection_made(self, transport: asyncio.BaseTransport) -> None:
            # uvloop's transports are not asyncio.Transport subclasses.
            self.transport = cast(asyncio.Transport, transport)
            self.connection = h11.Connection(h11.SERVER)

        def data_received(self, data: bytes) -> None:
            self.connection.receive_data(data)
            self.answer()

        def eof_received(self) -> bool:
            self.connection.receive_data(b"")
            self.answer()
            return False  # the transport closes itself, after what was written

        def answer(self) -> None:
            connection = self.connection
            while True:
                try:
                    event = connection.next_event()
                except h11.RemoteProtocolError:
                    self.transport.close()
                    return
                if event is h11.NEED_DATA:
                    return
                if isinstance(event, h11.Request):
                    self.transport.write(
                        connection.send(h11.Response(status_code=200, headers=headers, reason=b"OK"))
                        + connection.send(h11.Data(data=BODY))
                        + connection.send(h11.EndOfMessage())
                    )
                elif isinstance(event, h11.EndOfMessage) or event is h11.PAUSED:
                    if connection.our_state is h11.DONE and connection.their_state is h11.DONE:
                        connection.start_next_cycle()  # keep-alive: on to the next request
                    else:  # Connection: close, or HTTP/1.0
                        self.transport.close()
                        return
                elif isinstance(event, h11.ConnectionClosed):
                    self.transport.close()
                    return
                # h11.Data: a request body, ignored.

    loop = loop_factory()
    asyncio.set_event_loop(loop)
    server = loop.run_until_complete(loop.create_server(HelloH11, servers.HOST, 0))
    ready(int(server.sockets[0].getsockname()[1]))
    loop.run_forever()


def serve_twisted_web(root: str | None, ready: Callable[[int], None]) -> None:
    """twisted.web's Site on Twisted's default reactor: from memory, or ``root`` with static.File."""
    from twisted.internet import reactor
    from twisted.web import resource, server, static

    class Hello(resource.Resource):
        isLeaf = True

        def render_GET(self, request: Any) -> bytes:
            request.setHeader(b"content-type", b"text/plain")
            return BODY

    class QuietSite(server.Site):
        def log(self, request: Any) -> None:
            """No access log (twisted.web's default writes one line per request)."""

    site = QuietSite(Hello() if root is None else static.File(root))
    port = cast(Any, reactor).listenTCP(0, site, interface=servers.HOST)
    ready(int(port.getHost().port))
    cast(Any, reactor).run()


def serve_uvicorn(http: str, ready: Callable[[int], None]) -> None:
    """uvicorn with the parser ``http`` (h11 or httptools), a bare ASGI app, no access log."""
    import socket

    import uvicorn

    headers = [(b"content-type", b"text/plain"), (b"content-length", b"%d" % len(BODY))]

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": BODY})

    listener = socket.socket()
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind((servers.HOST, 0))
    listener.listen(1024)
    config = uvicorn.Config(
        app, http=http, access_log=False, log_level="warning", server_header=False, lifespan="off"
    )
    ready(int(listener.getsockname()[1]))  # connections wait in the backlog until it accepts
    uvicorn.Server(config).run(sockets=[listener])


def serve(kind: str, root: str, ready: Callable[[int], None]) -> None:
    """Run the server called ``kind`` (see :func:`server_kinds`)."""
    if kind.startswith("weft-"):
        driver, _, handler = kind.removeprefix("weft-").rpartition("-")
        if handler not in ("files", "hello") or not driver:
            raise SystemExit(f"unknown server kind {kind!r}")
        serve_weft(driver, handler, root, ready)
    elif kind == "h11-asyncio":
        import asyncio

        serve_h11(asyncio.new_event_loop, ready)
    elif kind == "h11-uvloop":
        import uvloop

        serve_h11(uvloop.new_event_loop, ready)
    elif kind in ("twisted-web", "twisted-web-files"):
        serve_twisted_web(root if kind == "twisted-web-files" else None, ready)
    elif kind in ("uvicorn-h11", "uvicorn-httptools"):
        serve_uvicorn(kind.removeprefix("uvicorn-"), ready)
    else:
        raise SystemExit(f"unknown server kind {kind!r}")


def main(argv: Sequence[str] | None = None) -> None:
    """Run one server (the child side of :class:`servers.ServerProcess`)."""
    parser = argparse.ArgumentParser(description="Run one benchmark HTTP server on loopback.")
    parser.add_argument("kind")
    parser.add_argument("--root", default=".", help=f"the directory the file servers serve ({FILE_NAME})")
    parser.add_argument("--cpu", type=int, help="pin the server to this core")
    parser.add_argument(
        "--fresh-malloc", action="store_true", help="skip servers.settle_allocator(): keep a fresh malloc"
    )
    args = parser.parse_args(argv)
    if args.cpu is not None:
        os.sched_setaffinity(0, {args.cpu})
    if not args.fresh_malloc:
        servers.settle_allocator()
    # SIGTERM ends the process (weft's serve() stops gracefully on it: the
    # client has closed its connections by then); no traceback on Ctrl-C.
    signal.signal(signal.SIGINT, signal.SIG_DFL)

    def ready(port: int) -> None:
        print(f"READY {port} {os.getpid()}", flush=True)

    serve(args.kind, args.root, ready)


if __name__ == "__main__":
    main()
