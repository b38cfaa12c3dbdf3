"""Volume: a large stream sent and echoed back at the same time, plain and over TLS.

One client sends pseudo-random bytes while it reads the echo, from one
thread with a selector (TLS through memory BIOs, since an ``SSLSocket`` must
not read in one thread while it writes in another).  What it sent and what
came back are hashed as they pass; the case passes when every byte came
back and the SHA-256 digests are equal.
"""

from __future__ import annotations

import hashlib
import random
import selectors
import time

from .clients import ClientError, MemoryTLS, client_context, connect
from .context import Attack
from .results import Figure, equals, holds, report
from .workspace import SERVER_NAME

#: Bytes generated and sent at a time.
BLOCK = 256 * 1024


def duplex(port: int, total: int, *, tls: MemoryTLS | None, timeout: float) -> tuple[str, str, int, float]:
    """Send ``total`` bytes to an echo server while reading them back.

    Returns the SHA-256 of what was sent, of what came back, how many bytes
    came back, and the seconds it took (the handshake excluded).
    """
    sock = connect(port, timeout=timeout)
    with sock:
        if tls is not None:
            tls.handshake(sock, timeout)
        sock.setblocking(False)
        sent_hash, received_hash = hashlib.sha256(), hashlib.sha256()
        generator = random.Random(9)
        sent = received = 0
        pending = memoryview(b"")
        started = time.monotonic()
        deadline = started + timeout
        with selectors.DefaultSelector() as selector:
            interest = selectors.EVENT_READ | selectors.EVENT_WRITE
            selector.register(sock, interest)
            while received < total:
                if not pending and sent < total:
                    block = generator.randbytes(min(BLOCK, total - sent))
                    sent_hash.update(block)
                    sent += len(block)
                    pending = memoryview(tls.seal(block) if tls is not None else block)
                wanted = selectors.EVENT_READ | (selectors.EVENT_WRITE if pending else 0)
                if wanted != interest:
                    selector.modify(sock, wanted)
                    interest = wanted
                left = deadline - time.monotonic()
                if left <= 0:
                    raise ClientError(f"only {received} of {total} bytes came back within {timeout:g} s")
                for _key, mask in selector.select(left):
                    if mask & selectors.EVENT_READ:
                        try:
                            data = sock.recv(BLOCK)
                        except BlockingIOError:
                            data = None
                        if data is not None:
                            if not data:
                                raise ClientError(f"the server closed after {received} of {total} bytes")
                            plain = tls.open(data) if tls is not None else data
                            received_hash.update(plain)
                            received += len(plain)
                    if mask & selectors.EVENT_WRITE and pending:
                        try:
                            pending = pending[sock.send(pending) :]
                        except BlockingIOError:
                            pass
        return sent_hash.hexdigest(), received_hash.hexdigest(), received, time.monotonic() - started


def _volume(attack: Attack, *, tls: bool) -> list[Figure]:
    total = attack.scale.volume_bytes
    timeout = 60.0 + total / (2 * 1024 * 1024)  # 2 MB/s at the very least
    if tls:
        server = attack.echo(*attack.tls_options())
        session: MemoryTLS | None = MemoryTLS(
            client_context(attack.workspace.certificates.ca_file), SERVER_NAME
        )
    else:
        server = attack.echo()
        session = None
    sent, received, count, seconds = duplex(server.port, total, tls=session, timeout=timeout)
    return [
        equals("bytes back", count, total),
        holds("sha-256 both ways", sent == received, "equal" if sent == received else "differ"),
        report("throughput each way", total / seconds / 1e6, "MB/s"),
        holds("server alive", server.alive()),
    ]


def volume(attack: Attack) -> list[Figure]:
    """1 GiB (fast: 64 MiB) each way at once through the echo server; digests equal."""
    return _volume(attack, tls=False)


def volume_tls(attack: Attack) -> list[Figure]:
    """The same over TLS."""
    return _volume(attack, tls=True)
