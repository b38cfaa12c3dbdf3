"""The servers ``asyncio_loops.py`` compares: plain asyncio programs, each on every asyncio loop.

Run as a script, it is one server::

    python benchmarks/loop_servers.py streams-weft --cpu 0

It listens on a free loopback port, prints ``READY <port> <pid>`` on stdout
and serves until it is sent SIGTERM (as ``servers.py`` does, whose
:class:`~servers.ServerProcess` starts and stops it).  A kind is
``<program>-<loop>``; the program's code is the same on every loop, only
the loop factory differs:

* programs: ``protocol``, an ``asyncio.Protocol`` whose ``data_received``
  writes what it got (``servers.py``'s asyncio echo server, reused);
  ``streams``, an ``asyncio.start_server`` handler that reads, writes and
  drains until EOF; ``aiohttp``, an aiohttp application answering ``GET
  /hello.txt`` with 200 and the 13 bytes ``http_load.py`` expects;
* loops (:data:`LOOPS`): ``asyncio`` (``asyncio.new_event_loop``, the
  baseline), ``weft`` (``weft.drivers.reactor.new_event_loop``: weft's
  reactor as an asyncio event loop) and ``uvloop``.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import importlib.util
import os
import signal
from collections.abc import Callable, Sequence
from typing import Any

import http_servers
import servers

#: Each loop: the module and the function that makes one, and the pip extra
#: that installs the module (None: weft itself, or the standard library).
LOOPS: dict[str, tuple[str, str, str | None]] = {
    "asyncio": ("asyncio", "new_event_loop", None),
    "weft": ("weft.drivers.reactor", "new_event_loop", None),
    "uvloop": ("uvloop", "new_event_loop", "uvloop"),
}

#: Each program: what it is, whether it echoes (else it answers HTTP), and
#: the module and pip extra it needs beyond the standard library.
PROGRAMS: dict[str, tuple[str, bool, str | None]] = {
    "protocol": ("asyncio.Protocol echo (data_received -> write)", True, None),
    "streams": ("asyncio streams echo (start_server; read, write, drain)", True, None),
    "aiohttp": ("aiohttp hello world (web.Application, GET /hello.txt)", False, "aiohttp"),
}


def loop_unavailable(loop: str) -> str | None:
    """Why the loop called ``loop`` cannot run here (naming the extra), or None."""
    module, _, extra = LOOPS[loop]
    if importlib.util.find_spec(module) is None:
        return f"the {loop} loop needs {module}: pip install 'weft[{extra}]'"
    return None


def program_unavailable(program: str) -> str | None:
    """Why ``program`` cannot run here (naming the extra), or None."""
    extra = PROGRAMS[program][2]
    if extra is not None and importlib.util.find_spec(extra) is None:
        return f"the {program} server needs {extra}: pip install 'weft[{extra}]'"
    return None


def loop_factory(loop: str) -> Callable[[], asyncio.AbstractEventLoop]:
    """The function that makes a new event loop of the kind called ``loop``."""
    module, function, _ = LOOPS[loop]
    factory: Callable[[], asyncio.AbstractEventLoop] = getattr(importlib.import_module(module), function)
    return factory


def split_kind(kind: str) -> tuple[str, str]:
    """``"streams-weft"`` -> ``("streams", "weft")``; SystemExit for a name that is neither."""
    program, _, loop = kind.partition("-")
    if program not in PROGRAMS or loop not in LOOPS:
        raise SystemExit(
            f"unknown server kind {kind!r}: <program>-<loop>, with a program of {', '.join(PROGRAMS)} "
            f"and a loop of {', '.join(LOOPS)}"
        )
    return program, loop


def server_kinds() -> list[servers.ServerKind]:
    """Every server that can run here, by program, then by loop (the baseline loop first)."""
    kinds = []
    for program, (description, _, _) in PROGRAMS.items():
        if program_unavailable(program) is not None:
            continue
        for loop in LOOPS:
            if loop_unavailable(loop) is None:
                kinds.append(
                    servers.ServerKind(f"{program}-{loop}", f"{description}, {loop} loop", None, True)
                )
    return kinds


# ------------------------------------------------------------------ servers


def serve_streams(loop: asyncio.AbstractEventLoop, ready: Callable[[int], None]) -> None:
    """The asyncio streams echo server an application would write."""

    async def echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        except ConnectionError:
            pass  # the client reset: nothing to answer
        finally:
            writer.close()

    server = loop.run_until_complete(asyncio.start_server(echo, servers.HOST, 0))
    ready(int(server.sockets[0].getsockname()[1]))
    loop.run_forever()


def serve_aiohttp(loop: asyncio.AbstractEventLoop, ready: Callable[[int], None]) -> None:
    """aiohttp's hello world: one route answering :data:`http_servers.BODY`, no access log."""
    from aiohttp import web

    async def hello(request: web.Request) -> web.Response:
        return web.Response(body=http_servers.BODY, content_type="text/plain")

    app = web.Application()
    app.router.add_get(http_servers.PATH, hello)
    # No access log: a logging call per request would be most of what is measured.
    runner = web.AppRunner(app, access_log=None)
    loop.run_until_complete(runner.setup())
    loop.run_until_complete(web.TCPSite(runner, servers.HOST, 0).start())
    address: Any = runner.addresses[0]
    ready(int(address[1]))
    loop.run_forever()


def serve(kind: str, ready: Callable[[int], None]) -> None:
    """Run the server called ``kind`` (see :func:`server_kinds`)."""
    program, loop_name = split_kind(kind)
    if (reason := program_unavailable(program) or loop_unavailable(loop_name)) is not None:
        raise SystemExit(reason)
    factory = loop_factory(loop_name)
    if program == "protocol":
        servers.serve_asyncio(factory, ready)
        return
    loop = factory()
    asyncio.set_event_loop(loop)
    if program == "streams":
        serve_streams(loop, ready)
    else:
        serve_aiohttp(loop, ready)


def main(argv: Sequence[str] | None = None) -> None:
    """Run one server (the child side of :class:`servers.ServerProcess`)."""
    parser = argparse.ArgumentParser(description="Run one benchmark asyncio server on loopback.")
    parser.add_argument("kind", help="<program>-<loop>: " + ", ".join(f"{p}-*" for p in PROGRAMS))
    parser.add_argument("--cpu", type=int, help="pin the server to this core")
    parser.add_argument(
        "--fresh-malloc", action="store_true", help="skip servers.settle_allocator(): keep a fresh malloc"
    )
    args = parser.parse_args(argv)
    if args.cpu is not None:
        os.sched_setaffinity(0, {args.cpu})
    if not args.fresh_malloc:
        servers.settle_allocator()
    # SIGTERM ends the process with no Python handler involved; no traceback on Ctrl-C.
    signal.signal(signal.SIGINT, signal.SIG_DFL)

    def ready(port: int) -> None:
        print(f"READY {port} {os.getpid()}", flush=True)

    serve(args.kind, ready)


if __name__ == "__main__":
    main()
