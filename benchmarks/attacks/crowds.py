"""Crowds: many connections at once, a full pool, no descriptors left, idle holders.

* **connections**: thousands of clients connect and each does an echo
  round trip, every one held open until all are done.  Each must be served
  or told the server is busy within a few seconds; none may be left hanging.
* **pool exhaustion**: idle clients fill ``--max-connections``; the next
  client is told "busy" within a second, and service returns when one leaves.
* **descriptor exhaustion**: the server runs with ``RLIMIT_NOFILE`` 64 and
  200 clients connect.  It must stay quiet (about a log line a second) and
  idle (near 0 % CPU), keep its listener, and serve again once they leave.
* **idle timeout** (the blocking driver, whose connections each hold
  threads): idle connections are cut at ``--idle-timeout``.
"""

from __future__ import annotations

import contextlib
import errno
import selectors
import socket
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

from .clients import (
    HOST,
    ClientError,
    ResponseReader,
    connect,
    drain_until_closed,
    get,
    raise_descriptor_limit,
    read_line,
    request,
)
from .context import Attack
from .results import Figure, at_most, equals, holds, report
from .settings import (
    BUSY_LINE,
    BUSY_STATUS,
    BUSY_WITHIN,
    DESCRIPTOR_RECOVERY_WITHIN,
    IDLE_CPU_SHARE,
    IDLE_TIMEOUT_OPTION,
    LOG_LINES_PER_SECOND,
    MAX_CONNECTIONS_OPTION,
    RECOVERY_WITHIN,
    TIMEOUT_SLACK,
)

#: Clients between their connect and their answer at once: more would only
#: overflow the server's listen backlog, and the kernel would retry SYNs a
#: second later, which measures the kernel, not the server.
IN_FLIGHT = 512


@dataclass
class CrowdOutcome:
    """How a crowd of echo clients fared."""

    served: int = 0
    busy: int = 0
    #: Closed or reset without an answer, or answered with something else.
    dropped: int = 0
    #: Never answered before the deadline (or never started).
    hung: int = 0
    #: Seconds from each answered client's connect to its answer.
    latencies: list[float] = field(default_factory=list)

    @property
    def slowest(self) -> float | None:
        """The longest wait for an answer."""
        return max(self.latencies) if self.latencies else None


@dataclass
class _Client:
    sock: socket.socket
    expected: bytes
    started: float
    connected: bool = False
    received: bytes = b""


def crowd(port: int, count: int, *, deadline: float) -> CrowdOutcome:
    """``count`` clients, each connecting and sending one line to the echo
    server; every one is held open until all are answered or ``deadline``
    seconds pass."""
    raise_descriptor_limit()
    outcome = CrowdOutcome()
    waiting = deque(range(count))
    active: dict[int, _Client] = {}
    held: list[socket.socket] = []
    end = time.monotonic() + deadline
    with selectors.DefaultSelector() as selector:
        try:
            while (waiting or active) and time.monotonic() < end:
                while waiting and len(active) < IN_FLIGHT:
                    number = waiting.popleft()
                    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
                    sock.setblocking(False)
                    held.append(sock)
                    status = sock.connect_ex((HOST, port))
                    if status not in (0, errno.EINPROGRESS):
                        outcome.dropped += 1
                        continue
                    client = _Client(sock, b"crowd %d\n" % number, time.monotonic())
                    active[sock.fileno()] = client
                    selector.register(sock, selectors.EVENT_WRITE, client)
                for key, _mask in selector.select(0.05):
                    client = key.data
                    if not client.connected:
                        if client.sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR):
                            _finish(selector, active, client)
                            outcome.dropped += 1
                            continue
                        client.connected = True
                        try:
                            client.sock.send(client.expected)  # a few bytes: the buffer takes them
                        except OSError:  # reset between the handshake and the send
                            _finish(selector, active, client)
                            outcome.dropped += 1
                            continue
                        selector.modify(client.sock, selectors.EVENT_READ, client)
                        continue
                    try:
                        data = client.sock.recv(4096)
                    except BlockingIOError:
                        continue
                    except OSError:
                        data = b""
                    client.received += data
                    if data and b"\n" not in client.received:
                        continue
                    line = client.received.split(b"\n", 1)[0].rstrip(b"\r") + b"\n"
                    _finish(selector, active, client)
                    if line == client.expected:
                        outcome.served += 1
                    elif line.startswith(BUSY_LINE):
                        outcome.busy += 1
                    else:
                        outcome.dropped += 1
                        continue
                    outcome.latencies.append(time.monotonic() - client.started)
        finally:
            outcome.hung = len(active) + len(waiting)
            for sock in held:
                sock.close()
    return outcome


def _finish(selector: selectors.BaseSelector, active: dict[int, _Client], client: _Client) -> None:
    selector.unregister(client.sock)
    del active[client.sock.fileno()]


def connections(attack: Attack) -> list[Figure]:
    """Crowds of 1,000 and 5,000 (fast: 500) concurrent echo clients."""
    server = attack.echo()
    figures: list[Figure] = []
    within = attack.scale.answer_within
    for count in attack.scale.crowds:
        outcome = crowd(server.port, count, deadline=within + 2 + count / 250)
        figures += [
            equals(f"{count}: served+busy", outcome.served + outcome.busy, count),
            report(f"{count}: busy", outcome.busy),
            report(f"{count}: dropped/hung", f"{outcome.dropped}/{outcome.hung}"),
            at_most(f"{count}: slowest answer", outcome.slowest, within, "s"),
        ]
    figures.append(holds("server alive", server.alive()))
    return figures


# -------------------------------------------------------- pool exhaustion


def _echo_served(sock: socket.socket, line: bytes, timeout: float) -> bytes:
    sock.sendall(line)
    return read_line(sock, timeout)


def pool_exhaustion(attack: Attack) -> list[Figure]:
    """Idle clients fill --max-connections; the next is told busy at once; service returns."""
    size = attack.scale.pool_size
    return _echo_pool(attack, size) + _http_pool(attack, size)


def _echo_pool(attack: Attack, size: int) -> list[Figure]:
    server = attack.echo(MAX_CONNECTIONS_OPTION, str(size))
    idle: list[socket.socket] = []
    try:
        for number in range(size):
            sock = connect(server.port)
            idle.append(sock)
            line = b"idle %d" % number
            if _echo_served(sock, line + b"\n", 5.0) != line:
                raise ClientError(f"idle client {number} of {size} was not served")
        started = time.monotonic()
        busy_after: float | None = None
        with connect(server.port) as extra:
            try:
                answer = _echo_served(extra, b"one too many\n", 3 * BUSY_WITHIN)
                busy_after = time.monotonic() - started
            except ClientError:
                answer = b"(no answer)"
        reset_one = idle.pop()
        reset_one.close()
        back_after = _recovered(lambda: _echo_answer(server.port) == b"are you back?")
    finally:
        for sock in idle:
            sock.close()
    return [
        equals("echo: over the pool", answer.decode(errors="replace"), BUSY_LINE.decode()),
        at_most("echo: busy after", busy_after, BUSY_WITHIN, "s"),
        at_most("echo: service back after", back_after, RECOVERY_WITHIN, "s"),
    ]


def _echo_answer(port: int) -> bytes:
    with connect(port, timeout=2.0) as sock:
        return _echo_served(sock, b"are you back?\n", 2.0)


def _http_pool(attack: Attack, size: int) -> list[Figure]:
    server = attack.http(MAX_CONNECTIONS_OPTION, str(size))
    idle: list[socket.socket] = []
    try:
        for number in range(size):
            sock = connect(server.port)
            idle.append(sock)
            sock.sendall(request("/small.txt"))  # kept alive: it holds its place
            reader = ResponseReader()
            while not reader.responses:
                data = sock.recv(65536)
                if not data:
                    raise ClientError(f"idle HTTP client {number} of {size} was not served")
                reader.feed(data)
        status: int | str = "(no answer)"
        retry_after: str | None = None
        busy_after: float | None = None
        with contextlib.suppress(ClientError, OSError):
            response, busy_after = get(server.port, "/small.txt", timeout=3 * BUSY_WITHIN)
            status, retry_after = response.status, response.headers.get("retry-after")
        idle.pop().close()
        back_after = _recovered(lambda: get(server.port, "/small.txt", timeout=2.0)[0].status == 200)
    finally:
        for sock in idle:
            sock.close()
    return [
        equals("http: over the pool", status, BUSY_STATUS),
        holds("http: retry-after", retry_after is not None, retry_after or "missing"),
        at_most("http: busy after", busy_after, BUSY_WITHIN, "s"),
        at_most("http: service back after", back_after, RECOVERY_WITHIN, "s"),
    ]


def _recovered(served: Callable[[], bool], within: float = RECOVERY_WITHIN) -> float | None:
    """Seconds until ``served()`` is true (tried every 50 ms), or None if not within twice ``within``."""
    started = time.monotonic()
    while time.monotonic() - started < 2 * within:
        with contextlib.suppress(OSError, ClientError):
            if served():
                return time.monotonic() - started
        time.sleep(0.05)
    return None


# --------------------------------------------------- descriptor exhaustion


def descriptor_exhaustion(attack: Attack) -> list[Figure]:
    """The server under RLIMIT_NOFILE 64, and 200 clients: quiet, idle, listening, recovering."""
    scale = attack.scale
    server = attack.echo(nofile=scale.nofile)
    clients: list[socket.socket] = []
    try:
        for _ in range(scale.descriptor_clients):
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            clients.append(sock)
            sock.setblocking(False)
            sock.connect_ex((HOST, server.port))
        time.sleep(0.2)  # the handshakes complete in the kernel
        for number, sock in enumerate(clients):
            with contextlib.suppress(OSError):
                sock.send(b"hello %d\n" % number)
        # Wait until the server has run out (or a second has passed).
        filled_by = time.monotonic() + 1.0
        while server.descriptors() < scale.nofile - 1 and time.monotonic() < filled_by:
            time.sleep(0.05)
        held = server.descriptors()
        started, cpu_before = time.monotonic(), server.cpu_seconds()
        time.sleep(scale.descriptor_seconds)
        seconds = time.monotonic() - started
        cpu_share = (server.cpu_seconds() - cpu_before) / seconds
        lines = len(server.lines(since=started))
        listening = server.listening()
        alive = server.alive()
    finally:
        for sock in clients:
            sock.close()
    back_after = _recovered(lambda: _echo_answer(server.port) == b"are you back?", DESCRIPTOR_RECOVERY_WITHIN)
    tracebacks = sum("Traceback" in line for _when, line in server.lines())
    return [
        report("descriptors held", held),
        at_most("log lines/s", lines / seconds, LOG_LINES_PER_SECOND + 1 / seconds),
        at_most("cpu", cpu_share * 100, IDLE_CPU_SHARE * 100, "%"),
        equals("tracebacks", tracebacks, 0),
        holds("listener kept", listening and alive),
        at_most("service back after", back_after, DESCRIPTOR_RECOVERY_WITHIN, "s"),
    ]


# ------------------------------------------------------------ idle timeout


def idle_timeout(attack: Attack) -> list[Figure]:
    """Connections that never send a byte are cut at --idle-timeout (the blocking driver)."""
    timeout = attack.scale.timeout(60.0)
    server = attack.echo(IDLE_TIMEOUT_OPTION, f"{timeout:g}")
    count = attack.scale.slow_connections
    started = time.monotonic()
    socks = [connect(server.port) for _ in range(count)]
    lived: list[float] = []
    try:
        for sock in socks:
            left = timeout + TIMEOUT_SLACK + 1 - (time.monotonic() - started)
            _data, closed = drain_until_closed(sock, max(left, 0.01))
            if closed:
                lived.append(time.monotonic() - started)
    finally:
        for sock in socks:
            sock.close()
    return [
        equals("cut", len(lived), count),
        at_most("longest lived", max(lived) if len(lived) == count else None, timeout + TIMEOUT_SLACK, "s"),
    ]
