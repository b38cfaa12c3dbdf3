"""Slow clients: heads trickled a byte a second, bodies declared and never sent.

Every connection is watched until the server ends it (an answer then EOF,
or a reset); how long it lived is the figure.  The targets are the server's
timeouts (the launcher's short ones in ``--fast`` runs, weft's defaults in
``--long`` ones) plus :data:`.settings.TIMEOUT_SLACK`.

* **slowloris**: a request head that never ends, a byte a second: cut at the
  head timeout (408, or a close);
* **held bodies**: a complete head declaring a body that never comes
  (``Content-Length: 100``; ``chunked`` with no chunk; a chunk of
  ``ffffffffffffffffff`` bytes): cut by the body deadline, or refused at once.
"""

from __future__ import annotations

import selectors
import socket
import time
from collections import Counter
from dataclasses import dataclass

from .clients import connect
from .context import Attack
from .results import Figure, at_most, equals, report
from .settings import DEFAULT_BODY_TIMEOUT, DEFAULT_HEAD_TIMEOUT, TIMEOUT_SLACK

SLOW_HEAD = b"GET /small.txt HTTP/1.1\r\nHost: attack.test\r\nX-Slow: "

HELD_BODIES = {
    "content-length": b"POST /small.txt HTTP/1.1\r\nHost: attack.test\r\nContent-Length: 100\r\n\r\n",
    "chunked": b"POST /small.txt HTTP/1.1\r\nHost: attack.test\r\nTransfer-Encoding: chunked\r\n\r\n",
    "huge-chunk": (
        b"POST /small.txt HTTP/1.1\r\nHost: attack.test\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"ffffffffffffffffff\r\n"
    ),
}


@dataclass
class Ending:
    """How one slow connection ended."""

    #: Seconds it lived (None: still open when the watch ended).
    lived: float | None = None
    #: The start of what the server sent (its status line, if any).
    received: bytes = b""

    @property
    def answer(self) -> str:
        """The status line it got, or "closed" for none."""
        line = self.received.split(b"\r\n", 1)[0]
        return line.decode(errors="replace") if line else "closed"


def watch(socks: list[socket.socket], started: float, *, trickle: bool, until: float) -> list[Ending]:
    """Watch ``socks`` until each is ended by the server or ``until`` (monotonic)
    passes; with ``trickle``, send each still-open one a byte a second.
    How each ended, in order."""
    endings = {sock: Ending() for sock in socks}
    next_byte = time.monotonic() + 1.0
    with selectors.DefaultSelector() as selector:
        for sock in socks:
            sock.setblocking(False)
            selector.register(sock, selectors.EVENT_READ, sock)
        while selector.get_map() and (now := time.monotonic()) < until:
            if trickle and now >= next_byte:
                next_byte = now + 1.0
                for sock, ending in endings.items():
                    if ending.lived is None:
                        try:
                            sock.send(b"a")
                        except OSError:
                            pass  # the server is ending it: the read side will tell
            wait = (min(until, next_byte) if trickle else until) - now
            for key, _mask in selector.select(max(wait, 0.0)):
                sock = key.data  # registered with the socket as its data
                try:
                    data = sock.recv(65536)
                except BlockingIOError:
                    continue
                except OSError:
                    data = b""
                ending = endings[sock]
                if data:
                    if len(ending.received) < 200:
                        ending.received += data[:200]
                    continue
                selector.unregister(sock)
                ending.lived = time.monotonic() - started
    return [endings[sock] for sock in socks]


def _figures(prefix: str, endings: list[Ending], limit: float) -> list[Figure]:
    lived = [ending.lived for ending in endings if ending.lived is not None]
    answers = Counter(ending.answer for ending in endings if ending.lived is not None)
    return [
        equals(f"{prefix}cut", len(lived), len(endings)),
        at_most(f"{prefix}longest lived", max(lived) if len(lived) == len(endings) else None, limit, "s"),
        report(f"{prefix}answers", ", ".join(f"{n}x {a}" for a, n in answers.most_common()) or "none"),
    ]


def slowloris(attack: Attack) -> list[Figure]:
    """Heads trickled a byte a second are cut at the head timeout."""
    server = attack.timed_http()
    timeout = attack.scale.timeout(DEFAULT_HEAD_TIMEOUT)
    count = attack.scale.slow_connections
    started = time.monotonic()
    socks = [connect(server.port) for _ in range(count)]
    try:
        for sock in socks:
            sock.sendall(SLOW_HEAD)
        endings = watch(socks, started, trickle=True, until=started + timeout + TIMEOUT_SLACK + 3)
    finally:
        for sock in socks:
            sock.close()
    return _figures("", endings, timeout + TIMEOUT_SLACK)


def held_bodies(attack: Attack) -> list[Figure]:
    """Complete heads whose bodies never come are cut by the body deadline."""
    server = attack.timed_http()
    timeout = attack.scale.timeout(DEFAULT_BODY_TIMEOUT)
    count = attack.scale.slow_connections
    started = time.monotonic()
    groups = {name: [connect(server.port) for _ in range(count)] for name in HELD_BODIES}
    try:
        for name, socks in groups.items():
            for sock in socks:
                sock.sendall(HELD_BODIES[name])
        # One watch for every group: they are held at the same time.
        everything = [sock for socks in groups.values() for sock in socks]
        endings = watch(everything, started, trickle=False, until=started + timeout + TIMEOUT_SLACK + 3)
    finally:
        for socks in groups.values():
            for sock in socks:
                sock.close()
    figures: list[Figure] = []
    for number, name in enumerate(groups):
        figures += _figures(
            f"{name}: ", endings[number * count : (number + 1) * count], timeout + TIMEOUT_SLACK
        )
    return figures
