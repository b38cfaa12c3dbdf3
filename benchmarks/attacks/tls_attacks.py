"""TLS garbage and stalls against ``weft serve echo --tls``.

Three kinds of client, twenty of each (``tls_connections``), at once:

* **garbage**: 512 random bytes (that cannot start a TLS record) instead of
  a ClientHello: refused at once (1 s);
* **hello, then silence**: a real ClientHello, then nothing: cut at the
  handshake timeout (60 s by default; the launcher's short one in ``--fast``);
* **truncated record**: a complete handshake, then half of an application
  data record, then a reset.

Then the server must still be there and serve the next client over TLS,
without a traceback in its log.
"""

from __future__ import annotations

import os
import time

from .clients import MemoryTLS, client_context, connect, reset, tls_echo_round_trip
from .context import Attack
from .results import Figure, equals, holds, report
from .settings import TIMEOUT_SLACK
from .slow import _figures, watch
from .workspace import SERVER_NAME

#: How soon garbage instead of a ClientHello must be refused: well under
#: the shortest handshake timeout, so that "refused" is not "timed out".
GARBAGE_CUT_WITHIN = 1.0


def _garbage() -> bytes:
    """512 bytes that cannot begin a TLS record.

    Plain random bytes begin a plausible record header now and then (a
    content type from 20 to 23, or a version byte of 3 in second place:
    OpenSSL then reads the announced length, up to 64 KiB, before judging
    the record), and the server rightly waits for the rest, until the
    handshake timeout: the silent hello's case, not garbage's.  A fixed
    prefix that no TLS or SSLv2 header can start with avoids it.
    """
    return b"NOT TLS\r\n" + os.urandom(503)


def tls_garbage(attack: Attack) -> list[Figure]:
    """Garbage, a stalled handshake, a truncated record: the server survives and serves."""
    server = attack.timed_tls_echo()
    timeout = attack.handshake_timeout()
    count = attack.scale.tls_connections
    context = client_context(attack.workspace.certificates.ca_file)
    # The truncated records first: the watch below must start as soon as
    # the garbage and the hellos are sent, or it would count our own delay.
    truncated = 0
    for _ in range(count):
        sock = connect(server.port)
        session = MemoryTLS(context, SERVER_NAME)
        session.handshake(sock, 10.0)
        record = session.seal(b"x" * 1000)
        sock.sendall(record[: len(record) // 2])
        reset(sock)
        truncated += 1
    started = time.monotonic()
    garbage = [connect(server.port) for _ in range(count)]
    stalled = [connect(server.port) for _ in range(count)]
    try:
        for sock in garbage:
            sock.sendall(_garbage())
        for sock in stalled:
            sock.sendall(MemoryTLS(context, SERVER_NAME).client_hello())
        endings = watch(
            garbage + stalled, started, trickle=False, until=started + timeout + TIMEOUT_SLACK + 3
        )
    finally:
        for sock in garbage + stalled:
            sock.close()
    served = tls_echo_round_trip(server.port, context, SERVER_NAME)
    tracebacks = sum("Traceback" in line for _when, line in server.lines())
    return [
        *_figures("garbage: ", endings[:count], GARBAGE_CUT_WITHIN),
        *_figures("silent hello: ", endings[count:], timeout + TIMEOUT_SLACK)[:2],
        report("truncated and reset", truncated),
        holds("next client served", served and server.alive()),
        equals("tracebacks", tracebacks, 0),
        report("log lines", len(server.lines())),
    ]
