"""Peers that never read, and peers that pipeline without reading.

While the attack holds, the server's RSS is sampled every 50 ms and another
client's small request (the probe) is timed on a connection of its own.  The
server passes when its memory grew by less than the budget and the probes
were answered in time (99th percentile):

* **never-reading echo**: clients send without end and never read;
* **never-reading pub/sub**: subscribers never read while another client
  publishes; each must be dropped once it falls ``max_backlog`` behind;
* **never-reading HTTP**: a thousand clients (fast: 200) ask for a 2 GiB
  file and never read a byte of it;
* **pipelining flood**: ten clients pipeline GETs and never read the
  answers; the server's CPU over the flood is reported.
"""

from __future__ import annotations

import contextlib
import math
import selectors
import socket
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator

from .clients import ClientError, closed_by_server, connect, get, line_exchange, read_line, request
from .context import Attack
from .results import Figure, at_least, at_most, equals, holds, report
from .server import ServerProcess, sampling_rss
from .settings import (
    PIPELINE_PROBE_P99,
    PROBE_P99,
    PUBSUB_MAX_BACKLOG,
    PUBSUB_MAX_SUBSCRIPTIONS,
    PUBSUB_MAX_TOPICS,
    RSS_BUDGET,
    RSS_BUDGET_PER_1000_DOWNLOADERS,
    RSS_ECHO_FIXED,
    RSS_PER_ECHO_HOARDER,
    MiB,
)

#: The receive buffer of a never-reading client: small, so that a thousand
#: of them pin little of the kernel's memory.
SMALL_BUFFER = 32 * 1024

#: How long one probe may take before it counts as unanswered.
PROBE_TIMEOUT = 2.0


def percentile(values: list[float], share: float) -> float | None:
    """The ``share`` percentile (0.99: the 99th) by the nearest-rank method."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, math.ceil(share * len(ordered)) - 1))]


def run_probes(probe: Callable[[], str], count: int, spread: float) -> tuple[list[float], Counter[str]]:
    """Call ``probe`` up to ``count`` times, one at a time, spread over ``spread``
    seconds; each call's seconds (an unanswered one counts as infinite) and
    what each answered.

    Probes that take longer than their share of ``spread`` delay the next
    ones, and the run stops at ``spread`` with fewer probes (reported by the
    caller): a slow server shows in each probe's latency, not twice by also
    counting the probes there was no time left for.
    """
    latencies: list[float] = []
    answers: Counter[str] = Counter()
    gap = spread / count
    end = time.monotonic() + spread
    for _ in range(count):
        started = time.monotonic()
        if started > end:
            break
        try:
            answers[probe()] += 1
            latencies.append(time.monotonic() - started)
        except (ClientError, OSError) as exc:
            answers[type(exc).__name__] += 1
            latencies.append(math.inf)
        time.sleep(max(0.0, gap - (time.monotonic() - started)))
    return latencies, answers


class Flood:
    """Writes ``payload`` again and again to every socket, whenever it takes
    more, on a thread of its own, never reading; until :meth:`stop`."""

    def __init__(self, sockets: list[socket.socket], payload: bytes) -> None:
        self.sockets = sockets
        self.payload = payload
        self.sent = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        with selectors.DefaultSelector() as selector:
            for sock in self.sockets:
                sock.setblocking(False)
                selector.register(sock, selectors.EVENT_WRITE, sock)
            while not self._stop.is_set() and selector.get_map():
                for key, _mask in selector.select(0.05):
                    sock = key.data  # registered with the socket as its data
                    try:
                        self.sent += sock.send(self.payload)
                    except BlockingIOError:
                        pass
                    except OSError:  # the server closed it: fine, it stops costing
                        selector.unregister(sock)

    def wait_stalled(self, quiet: float = 0.5, timeout: float = 30.0) -> bool:
        """Wait until no byte has gone out for ``quiet`` seconds (every socket
        is blocked: the server stopped reading them), at most ``timeout``;
        whether it stalled."""
        deadline = time.monotonic() + timeout
        last, since = self.sent, time.monotonic()
        while time.monotonic() < deadline:
            time.sleep(0.05)
            if self.sent != last:
                last, since = self.sent, time.monotonic()
            elif time.monotonic() - since >= quiet:
                return True
        return False

    def stop(self) -> None:
        """Stop writing, and wait for the thread."""
        self._stop.set()
        self._thread.join(5.0)


@contextlib.contextmanager
def opened(sockets: list[socket.socket]) -> Iterator[list[socket.socket]]:
    """Close every socket in the list (as it is by then) at the end of the block."""
    try:
        yield sockets
    finally:
        for sock in sockets:
            sock.close()


def _memory_and_probes(
    server: ServerProcess,
    attack_start: Callable[[], object],
    probe: Callable[[], str],
    attack: Attack,
    *,
    budget: int,
    p99_target: float,
    seconds: float,
) -> list[Figure]:
    """Start the attack, probe for ``seconds``; the RSS and probe figures."""
    baseline = server.rss()
    cpu_before = server.cpu_seconds()
    started = time.monotonic()
    with sampling_rss(server) as samples:
        attack_start()
        latencies, answers = run_probes(probe, attack.scale.probes, seconds)
    cpu_share = (server.cpu_seconds() - cpu_before) / (time.monotonic() - started)
    growth = max(samples, default=baseline) - baseline
    return [
        at_most("rss growth", growth, budget, "bytes"),
        at_most("probe p99", percentile(latencies, 0.99), p99_target, "s"),
        report("probe p50", percentile(latencies, 0.5), "s"),
        at_least("probes made", len(latencies), max(1, attack.scale.probes // 5)),
        report("probe answers", ", ".join(f"{count}x {answer}" for answer, count in answers.most_common())),
        report("server cpu", cpu_share * 100, "%"),
        holds("server alive", server.alive()),
    ]


# -------------------------------------------------------------------- echo


def never_reading_echo(attack: Attack) -> list[Figure]:
    """Echo clients that send without end and never read."""
    server = attack.echo()
    line_exchange(server.port, b"warm up\n")
    with opened([]) as socks:
        flood: list[Flood] = []
        stalled: list[bool] = []

        def start() -> None:
            socks.extend(connect(server.port, rcvbuf=SMALL_BUFFER) for _ in range(attack.scale.echo_hoarders))
            flood.append(Flood(socks, b"x" * 65536))
            # Probe once the echoes are held, not during the bulk transfer
            # that fills every buffer on the way (throughput, not fairness:
            # the flood's thread also competes with the probes for the GIL).
            stalled.append(flood[-1].wait_stalled())

        try:
            figures = _memory_and_probes(
                server,
                start,
                lambda: _echo_probe(server.port),
                attack,
                budget=RSS_ECHO_FIXED + RSS_PER_ECHO_HOARDER * attack.scale.echo_hoarders,
                p99_target=PROBE_P99,
                seconds=attack.scale.hold_seconds,
            )
        finally:
            for running in flood:
                running.stop()
    return [
        report("never-reading clients", attack.scale.echo_hoarders),
        holds("flood held back by the server", all(stalled)),
        *figures,
    ]


def _echo_probe(port: int) -> str:
    line = line_exchange(port, b"probe\n", timeout=PROBE_TIMEOUT)
    return "echoed" if line == b"probe" else repr(line[:40])


# ------------------------------------------------------------------ pub/sub


def never_reading_pubsub(attack: Attack) -> list[Figure]:
    """Subscribers that never read while another client publishes; each dropped past its backlog."""
    server = attack.pubsub()
    count = attack.scale.slow_subscribers
    message = b"PUB news " + b"m" * 1000 + b"\n"
    # Enough for every subscriber to fall past its backlog, twice over, after
    # filling the kernel's buffers (a loopback send buffer grows to 4 MiB).
    publications = (2 * PUBSUB_MAX_BACKLOG + 8 * MiB) // len(message)
    with opened([]) as socks:
        publisher: list[threading.Thread] = []

        def start() -> None:
            for _ in range(count):
                sock = connect(server.port, rcvbuf=SMALL_BUFFER)
                socks.append(sock)
                sock.sendall(b"SUB news\n")
                if read_line(sock, 5.0) != b"OK":
                    raise ClientError("a subscriber was not subscribed")
            thread = threading.Thread(target=_publish, args=(server.port, message, publications), daemon=True)
            thread.start()
            publisher.append(thread)

        figures = _memory_and_probes(
            server,
            start,
            lambda: _pubsub_probe(server.port),
            attack,
            budget=RSS_BUDGET,
            p99_target=PROBE_P99,
            seconds=attack.scale.hold_seconds,
        )
        for thread in publisher:
            thread.join(30.0)
        # A dropped subscriber finds, after its backlog, "ERR slow consumer" and the end.
        dropped = closed_by_server(socks, 3.0)
    return [report("never-reading subscribers", count), equals("dropped", dropped, count), *figures]


def _publish(port: int, message: bytes, count: int) -> None:
    """Publish ``count`` messages as fast as the server takes them, reading the replies."""
    with contextlib.suppress(OSError), connect(port, timeout=30.0) as sock:
        sock.setblocking(False)
        batch = message * 64
        sent = replies = 0
        deadline = time.monotonic() + 30.0
        with selectors.DefaultSelector() as selector:
            selector.register(sock, selectors.EVENT_READ | selectors.EVENT_WRITE)
            pending = memoryview(b"")
            while replies < count and time.monotonic() < deadline:
                if not pending and sent < count:
                    pending = memoryview(batch)
                    sent += 64
                for _key, mask in selector.select(0.1):
                    if mask & selectors.EVENT_READ:
                        with contextlib.suppress(BlockingIOError):
                            data = sock.recv(65536)
                            if not data:
                                return
                            replies += data.count(b"\n")
                    if mask & selectors.EVENT_WRITE and pending:
                        with contextlib.suppress(BlockingIOError):
                            pending = pending[sock.send(pending) :]


def _pubsub_probe(port: int) -> str:
    line = line_exchange(port, b"PUB probe hello\n", timeout=PROBE_TIMEOUT)
    return line.decode(errors="replace")[:40]


# --------------------------------------------------------------------- HTTP


def never_reading_http(attack: Attack) -> list[Figure]:
    """A thousand (fast: 200) clients GET a 2 GiB file and never read it."""
    server = attack.http()
    get(server.port, "/small.txt")
    count = attack.scale.downloaders
    budget = RSS_BUDGET_PER_1000_DOWNLOADERS
    under_way: list[int] = []
    with opened([]) as socks:

        def start() -> None:
            for _ in range(count):
                sock = connect(server.port, rcvbuf=SMALL_BUFFER)
                socks.append(sock)
                sock.sendall(request("/big.bin"))
            # Probe once every download is under way (its first bytes wait in
            # the client's buffer), not while the server is still answering
            # the GETs: "meanwhile" is while they hold their connections.
            under_way.append(_all_readable(socks, timeout=30.0))

        figures = _memory_and_probes(
            server,
            start,
            lambda: _http_probe(server.port),
            attack,
            budget=budget,
            p99_target=PROBE_P99,
            seconds=attack.scale.hold_seconds,
        )
    return [
        report("never-reading downloaders", count),
        equals("downloads under way", under_way[0], count),
        *figures,
    ]


def _all_readable(socks: list[socket.socket], timeout: float) -> int:
    """How many of ``socks`` have something to read, waiting for all of them
    up to ``timeout`` seconds (nothing is read)."""
    waiting = set(socks)
    deadline = time.monotonic() + timeout
    with selectors.DefaultSelector() as selector:
        for sock in socks:
            selector.register(sock, selectors.EVENT_READ)
        while waiting and time.monotonic() < deadline:
            for key, _mask in selector.select(0.1):
                selector.unregister(key.fileobj)
                waiting.discard(key.fileobj)
    return len(socks) - len(waiting)


def _http_probe(port: int) -> str:
    response, _seconds = get(port, "/small.txt", timeout=PROBE_TIMEOUT)
    return str(response.status)


def pipelining_flood(attack: Attack) -> list[Figure]:
    """Ten clients pipeline GETs and never read the answers."""
    server = attack.http()
    get(server.port, "/small.txt")
    flood: list[Flood] = []
    with opened([]) as socks:

        def start() -> None:
            socks.extend(connect(server.port, rcvbuf=SMALL_BUFFER) for _ in range(attack.scale.pipeliners))
            flood.append(Flood(socks, request("/small.txt") * 400))

        try:
            figures = _memory_and_probes(
                server,
                start,
                lambda: _http_probe(server.port),
                attack,
                budget=RSS_BUDGET,
                p99_target=PIPELINE_PROBE_P99,
                seconds=attack.scale.pipeline_seconds,
            )
        finally:
            for running in flood:
                running.stop()
    sent = sum(running.sent for running in flood)
    return [report("pipelined", f"{sent / 1e6:.1f} MB"), *figures]


# ------------------------------------------------------ subscription flood


def _subscribe_many(sock: socket.socket, topics: list[bytes], timeout: float) -> tuple[int, int]:
    """Pipeline ``SUB topic`` for every topic on ``sock`` (left open: a topic
    lives while it has a subscriber), reading the replies; how many were
    answered OK and how many ERR."""
    ok = refused = 0
    commands = memoryview(b"".join(b"SUB " + topic + b"\n" for topic in topics))
    sock.setblocking(False)
    received = b""
    deadline = time.monotonic() + timeout
    with selectors.DefaultSelector() as selector:
        selector.register(sock, selectors.EVENT_READ | selectors.EVENT_WRITE)
        while ok + refused < len(topics) and time.monotonic() < deadline:
            if not commands:
                selector.modify(sock, selectors.EVENT_READ)
            for _key, mask in selector.select(0.1):
                if mask & selectors.EVENT_WRITE and commands:
                    with contextlib.suppress(BlockingIOError):
                        commands = commands[sock.send(commands[:65536]) :]
                if mask & selectors.EVENT_READ:
                    try:
                        data = sock.recv(65536)
                    except BlockingIOError:
                        continue
                    except OSError:
                        data = b""
                    if not data:
                        return ok, refused
                    received += data
                    lines = received.split(b"\n")
                    received = lines.pop()
                    ok += sum(1 for line in lines if line.startswith(b"OK"))
                    refused += sum(1 for line in lines if line.startswith(b"ERR"))
    return ok, refused


def subscription_flood(attack: Attack) -> list[Figure]:
    """Twice the per-connection limit of topics on one connection; then more
    topics than the hub's limit, spread over many connections (each under its own)."""
    server = attack.pubsub()
    baseline = server.rss()
    per_connection = PUBSUB_MAX_SUBSCRIPTIONS * 9 // 10
    connections = PUBSUB_MAX_TOPICS * 12 // 10 // per_connection
    with sampling_rss(server) as samples, opened([]) as socks:
        socks.append(connect(server.port))
        one_ok, one_refused = _subscribe_many(
            socks[0], [b"one-%0150d" % n for n in range(2 * PUBSUB_MAX_SUBSCRIPTIONS)], 30.0
        )
        spread_ok = spread_refused = 0
        for number in range(connections):
            socks.append(connect(server.port))
            ok, refused = _subscribe_many(
                socks[-1], [b"%d-%d" % (number, n) for n in range(per_connection)], 30.0
            )
            spread_ok, spread_refused = spread_ok + ok, spread_refused + refused
    growth = max(samples, default=baseline) - baseline
    return [
        report("one connection: subscribed", one_ok),
        holds("one connection: limit answered", one_refused > 0, f"{one_refused} ERR"),
        report(f"{connections} connections: subscribed", spread_ok),
        holds("topic limit answered", spread_refused > 0, f"{spread_refused} ERR"),
        report("rss growth", growth, "bytes"),
        holds("server alive", server.alive()),
    ]
