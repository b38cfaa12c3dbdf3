"""weft's C accelerator (``weft._speedups``) against ``os.read``/``os.write``, and its selection.

Each case makes the same call both ways, on descriptors in the same state,
and requires the same outcome: the same bytes or count, or an exception of
the same type with the same errno and message.  Then: the reactor's
transports use the accelerator where it is built and ``os``'s calls where it
is not, where ``WEFT_PURE_PYTHON=1`` says so, and on regular files.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator
from functools import partial
from typing import Any

import pytest

from tests.support import TIMEOUT
from weft.drivers._core import accelerator
from weft.drivers._core.socket_defaults import READ_SIZE
from weft.drivers.reactor import Reactor
from weft.drivers.reactor._pollers import ERROR, HANGUP, READABLE, WRITABLE

try:
    from weft import _speedups
except ImportError:  # pragma: no cover - a build without a C compiler
    _speedups = None  # type: ignore[assignment]

#: Skips the comparisons where the accelerator was not built (no C compiler at install).
needs_accelerator = pytest.mark.skipif(
    _speedups is None, reason="weft._speedups is not built here (no C compiler when weft was installed)"
)

#: What one call gave: ("ok", result) or ("raised", type, errno, strerror).
Outcome = tuple[Any, ...]


def outcome(call: Callable[[], Any]) -> Outcome:
    try:
        return ("ok", call())
    except OSError as exc:
        return ("raised", type(exc), exc.errno, exc.strerror)
    except Exception as exc:
        return ("raised", type(exc), None, None)


def reader_pair(fd: int) -> list[Callable[[int], bytes]]:
    """os's read call for ``fd``, then the accelerator's."""
    return [partial(os.read, fd), _speedups.DescriptorReader(fd)]


def writer_pair(fd: int) -> list[Callable[[Any], int]]:
    """os's write call for ``fd``, then the accelerator's."""
    return [partial(os.write, fd), _speedups.DescriptorWriter(fd)]


# ------------------------------------------------------------- descriptors


def nonblocking_pipe() -> tuple[int, int]:
    read_fd, write_fd = os.pipe()
    os.set_blocking(read_fd, False)
    os.set_blocking(write_fd, False)
    return read_fd, write_fd


def nonblocking_socketpair() -> tuple[int, int]:
    one, two = socket.socketpair()
    one.setblocking(False)
    two.setblocking(False)
    return one.detach(), two.detach()


def nonblocking_tcp_pair() -> tuple[int, int]:
    with socket.create_server(("127.0.0.1", 0)) as listener:
        client = socket.create_connection(listener.getsockname(), timeout=TIMEOUT)
        server, _ = listener.accept()
    client.setblocking(False)
    server.setblocking(False)
    return client.detach(), server.detach()


#: Makes a (read end, write end) pair of non-blocking descriptors: each kind the reactor reads.
PAIRS: dict[str, Callable[[], tuple[int, int]]] = {
    "pipe": nonblocking_pipe,
    "socketpair": nonblocking_socketpair,
    "tcp": nonblocking_tcp_pair,
}


@pytest.fixture(params=list(PAIRS))
def make_pair(request: pytest.FixtureRequest) -> Iterator[Callable[[], tuple[int, int]]]:
    """Makes pairs of the parameter's kind; closes every descriptor still open after the test."""
    made: list[int] = []

    def make() -> tuple[int, int]:
        pair = PAIRS[request.param]()
        made.extend(pair)
        return pair

    yield make
    for fd in made:
        try:
            os.close(fd)
        except OSError:
            pass  # closed by the test


def same_read(
    make_pair: Callable[[], tuple[int, int]], size: int, sent: bytes = b"", *, eof: bool = False
) -> Outcome:
    """read(size) both ways, each on a new pair that holds ``sent`` (then EOF
    with ``eof``); asserts the outcomes are equal, and returns it."""
    outcomes = []
    for index in range(2):
        read_fd, write_fd = make_pair()
        view = memoryview(sent)
        while view:
            view = view[os.write(write_fd, view) :]
        if eof:
            os.close(write_fd)
        outcomes.append(outcome(partial(reader_pair(read_fd)[index], size)))
    assert outcomes[1] == outcomes[0]
    return outcomes[0]


# ------------------------------------------------------------------- reads

@needs_accelerator
@pytest.mark.parametrize(
    "length", [1, 64, 1024, 4095, 4096, 4097, 16 * 1024, 64 * 1024 - 1, 64 * 1024]
)
def test_a_read_gives_what_arrived_as_bytes(make_pair: Callable[[], tuple[int, int]], length: int) -> None:
    """Reads on either side of the copy limit (4 KiB) and up to the spare's
    size: the same bytes, of exactly their length, as os.read."""
    sent = bytes(index % 251 for index in range(length))
    result = same_read(make_pair, 64 * 1024, sent)
    assert result[0] == "ok"
    assert type(result[1]) is bytes
    # A socket may hand over less than was sent in one read; a pipe all of it.
    assert sent.startswith(result[1])
    assert result[1]


@needs_accelerator
def test_a_read_asks_for_no_more_than_its_size(make_pair: Callable[[], tuple[int, int]]) -> None:
    """With more waiting than asked for, both give exactly ``size`` bytes, and
    the rest stays for the next read."""
    read_fd, write_fd = make_pair()
    os.write(write_fd, b"abcdefgh")
    read = _speedups.DescriptorReader(read_fd)
    assert read(3) == b"abc"
    assert read(0) == b""
    assert read(100) == b"defgh"
    assert same_read(make_pair, 5, b"0123456789") == ("ok", b"01234")


@needs_accelerator
def test_a_read_larger_than_the_spare_is_os_reads(make_pair: Callable[[], tuple[int, int]]) -> None:
    """A size over the spare buffer (1 MiB) reads what is there, as os.read does."""
    sent = os.urandom(200_000)
    read_fd, write_fd = make_pair()
    read = _speedups.DescriptorReader(read_fd)
    rest = memoryview(sent)
    received = b""
    while len(received) < len(sent):
        if rest:
            rest = rest[os.write(write_fd, rest) :]
        received += read(1 << 20)
    assert received == sent


@needs_accelerator
def test_reads_that_hand_out_the_spare_and_copy_from_it_stay_apart() -> None:
    """A large read hands out the spare buffer itself; the small and large
    reads after it (on other descriptors) leave its bytes as they were."""
    pipes = [nonblocking_pipe() for _ in range(3)]
    try:
        big, small, other = pipes
        os.write(big[1], b"B" * 50_000)
        os.write(small[1], b"s" * 100)
        os.write(other[1], b"o" * 60_000)
        first = _speedups.DescriptorReader(big[0])(65536)
        second = _speedups.DescriptorReader(small[0])(65536)
        third = _speedups.DescriptorReader(other[0])(65536)
        assert (first, second, third) == (b"B" * 50_000, b"s" * 100, b"o" * 60_000)
    finally:
        for pair in pipes:
            os.close(pair[0])
            os.close(pair[1])


@needs_accelerator
def test_nothing_to_read_is_blocking_io_error(make_pair: Callable[[], tuple[int, int]]) -> None:
    """EAGAIN: BlockingIOError, errno and message as os.read's."""
    result = same_read(make_pair, 1024)
    assert result[:2] == ("raised", BlockingIOError)


@needs_accelerator
def test_end_of_file_is_empty_bytes(make_pair: Callable[[], tuple[int, int]]) -> None:
    """The peer gone (its end closed), after the data: the data, then b''."""
    assert same_read(make_pair, 1024, eof=True) == ("ok", b"")
    read_fd, write_fd = make_pair()
    os.write(write_fd, b"last")
    os.close(write_fd)
    read = _speedups.DescriptorReader(read_fd)
    assert (read(1024), read(1024)) == (b"last", b"")


@needs_accelerator
def test_a_reset_connection_is_connection_reset_error() -> None:
    """A TCP peer that closed with unread data sends RST: ConnectionResetError, as os.read."""
    outcomes = []
    for index in range(2):
        client, server = nonblocking_tcp_pair()
        try:
            os.write(client, b"unread")
            with socket.socket(fileno=server) as closing:
                closing.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
            # The RST is on its way on loopback; wait for it by polling the
            # descriptor for readability (an error is readable).
            with socket.socket(fileno=os.dup(client)) as waiting:
                waiting.settimeout(TIMEOUT)
                import select

                select.select([waiting], [], [], TIMEOUT)
            outcomes.append(outcome(partial(reader_pair(client)[index], 1024)))
        finally:
            os.close(client)
    assert outcomes[0] == outcomes[1] == ("raised", ConnectionResetError, 104, os.strerror(104))


@needs_accelerator
@pytest.mark.parametrize(
    ("size", "expected"),
    [
        (-1, OSError),
        (sys.maxsize, OverflowError),
        (2**63, OverflowError),
        (2**100, OverflowError),
        (1.5, TypeError),
        ("10", TypeError),
        (None, TypeError),
    ],
)
def test_sizes_os_read_refuses_are_refused_alike(size: Any, expected: type[Exception]) -> None:
    """A negative size (OSError EINVAL), one too large for a bytes object or a
    C ssize_t (OverflowError), and one that is no integer (TypeError)."""
    read_fd, write_fd = nonblocking_pipe()
    try:
        os.write(write_fd, b"data")
        outcomes = [outcome(partial(call, size)) for call in reader_pair(read_fd)]
    finally:
        os.close(read_fd)
        os.close(write_fd)
    assert outcomes[0] == outcomes[1]
    assert outcomes[0][:2] == ("raised", expected)


@needs_accelerator
def test_a_size_with_index_is_taken_as_os_read_takes_it() -> None:
    """True is 1; an object with __index__ is its value."""

    class Three:
        def __index__(self) -> int:
            return 3

    read_fd, write_fd = nonblocking_pipe()
    try:
        os.write(write_fd, b"abcdef")
        read = _speedups.DescriptorReader(read_fd)
        assert read(True) == b"a"
        assert read(Three()) == b"bcd"  # type: ignore[arg-type]
    finally:
        os.close(read_fd)
        os.close(write_fd)


@needs_accelerator
def test_a_closed_descriptor_is_ebadf_both_ways() -> None:
    """A descriptor closed under the reader and the writer: OSError EBADF, as os's."""
    read_fd, write_fd = nonblocking_pipe()
    os.close(read_fd)
    os.close(write_fd)
    reads = [outcome(partial(call, 10)) for call in reader_pair(read_fd)]
    writes = [outcome(partial(call, b"x")) for call in writer_pair(write_fd)]
    assert reads[0] == reads[1] == ("raised", OSError, 9, os.strerror(9))
    assert writes[0] == writes[1] == ("raised", OSError, 9, os.strerror(9))


# ------------------------------------------------------------------ writes


@needs_accelerator
@pytest.mark.parametrize(
    "data",
    [
        b"bytes",
        b"",
        bytearray(b"a bytearray"),
        memoryview(b"a memoryview, sliced")[2:],
        memoryview(bytearray(b"of a bytearray")),
        memoryview(b"\x00\x01\x02\x03" * 4).cast("I"),
    ],
    ids=["bytes", "empty", "bytearray", "memoryview", "memoryview-of-bytearray", "memoryview-of-ints"],
)
def test_a_write_sends_any_contiguous_buffer(make_pair: Callable[[], tuple[int, int]], data: Any) -> None:
    """bytes, bytearray and memoryviews (sliced, of ints): the same count as
    os.write, and the peer reads exactly those bytes."""
    results = []
    for write in range(2):
        read_fd, write_fd = make_pair()
        results.append(outcome(partial(writer_pair(write_fd)[write], data)))
        expected = bytes(data)
        received = b""
        while len(received) < len(expected):
            received += os.read(read_fd, 65536)
        assert received == expected
    assert results[0] == results[1] == ("ok", len(bytes(data)))


@needs_accelerator
@pytest.mark.parametrize(
    "data",
    ["text", 42, None, memoryview(b"abcdef")[::2]],
    ids=["str", "int", "None", "non-contiguous-memoryview"],
)
def test_what_os_write_refuses_is_refused_alike(data: Any) -> None:
    """No buffer, or a non-contiguous one: the same exception type as os.write."""
    read_fd, write_fd = nonblocking_pipe()
    try:
        outcomes = [outcome(partial(call, data)) for call in writer_pair(write_fd)]
    finally:
        os.close(read_fd)
        os.close(write_fd)
    assert outcomes[0][:2] == outcomes[1][:2]
    assert outcomes[0][0] == "raised"


def fill(write_fd: int) -> int:
    """Write to ``write_fd`` until the kernel takes no more; how much it took."""
    total = 0
    chunk = b"f" * 65536
    while True:
        try:
            total += os.write(write_fd, chunk)
        except BlockingIOError:
            return total


@needs_accelerator
def test_a_full_descriptor_takes_part_then_refuses(make_pair: Callable[[], tuple[int, int]]) -> None:
    """A write larger than the room left takes part of it (the count says how
    much); a write with no room is BlockingIOError, as os.write."""
    results = []
    for index in range(2):
        _, write_fd = make_pair()
        fill(write_fd)
        results.append(outcome(partial(writer_pair(write_fd)[index], b"x" * 1024)))
    assert results[0] == results[1]
    assert results[0][:2] == ("raised", BlockingIOError)
    _, write_fd = make_pair()
    data = bytes(32 << 20)  # more than any of these kernels' buffers holds
    write = _speedups.DescriptorWriter(write_fd)
    sent = write(data)
    assert 0 < sent < len(data)


@needs_accelerator
def test_the_rest_after_a_partial_write_arrives_in_order() -> None:
    """What a transport does after a partial write: write memoryview(data)[sent:]
    until all is taken, reading in between; the reader sees every byte once, in order."""
    read_fd, write_fd = nonblocking_socketpair()
    try:
        data = os.urandom(3 << 20)
        write = _speedups.DescriptorWriter(write_fd)
        read = _speedups.DescriptorReader(read_fd)
        rest = memoryview(data)
        received = bytearray()
        partial_writes = 0
        while rest or len(received) < len(data):
            if rest:
                try:
                    sent = write(rest)
                except BlockingIOError:
                    sent = 0
                partial_writes += 0 < sent < len(rest)
                rest = rest[sent:]
            try:
                received += read(65536)
            except BlockingIOError:
                pass
        assert bytes(received) == data
        assert partial_writes > 0
    finally:
        os.close(read_fd)
        os.close(write_fd)


@needs_accelerator
def test_a_pipe_with_no_reader_is_broken_pipe_error() -> None:
    """EPIPE (Python ignores SIGPIPE): BrokenPipeError, as os.write."""
    outcomes = []
    for index in range(2):
        read_fd, write_fd = nonblocking_pipe()
        os.close(read_fd)
        try:
            outcomes.append(outcome(partial(writer_pair(write_fd)[index], b"lost")))
        finally:
            os.close(write_fd)
    assert outcomes[0] == outcomes[1] == ("raised", BrokenPipeError, 32, os.strerror(32))


# -------------------------------------------------------------------- EINTR


class Interrupted(Exception):
    """What the test's signal handler raises."""


#: Arms SIGALRM: the handler, the delay, and the interval to repeat at (0: once).
Alarm = Callable[[Callable[[], object], float, float], None]


@pytest.fixture
def alarm() -> Iterator[Alarm]:
    """Arms SIGALRM (ITIMER_REAL) with a handler; disarmed after the test."""
    previous = signal.getsignal(signal.SIGALRM)

    def arm(handler: Callable[[], object], delay: float, interval: float) -> None:
        signal.signal(signal.SIGALRM, lambda _signum, _frame: handler())
        signal.setitimer(signal.ITIMER_REAL, delay, interval)

    yield arm
    signal.setitimer(signal.ITIMER_REAL, 0)
    signal.signal(signal.SIGALRM, previous)


@needs_accelerator
@pytest.mark.parametrize("accelerated", [False, True], ids=["os", "accelerator"])
def test_a_read_interrupted_by_a_signal_runs_the_handler_and_goes_on(
    alarm: Alarm, accelerated: bool
) -> None:
    """EINTR (PEP 475): a read blocked on an empty pipe is interrupted by
    SIGALRM; the handler runs (and writes to the pipe), and the read is made
    again and returns what the handler wrote."""
    read_fd, write_fd = os.pipe()  # blocking: the read waits for the signal
    try:
        alarm(lambda: os.write(write_fd, b"from the handler"), 0.02, 0)
        read = reader_pair(read_fd)[accelerated]
        assert read(1024).startswith(b"from the handler")
    finally:
        os.close(read_fd)
        os.close(write_fd)


@needs_accelerator
@pytest.mark.parametrize("accelerated", [False, True], ids=["os", "accelerator"])
def test_a_handler_that_raises_ends_the_interrupted_read_with_its_exception(
    alarm: Alarm, accelerated: bool
) -> None:
    """EINTR, and the handler raises: the read gives up with that exception."""
    read_fd, write_fd = os.pipe()
    reading = False

    def handler() -> None:
        nonlocal reading
        if reading:
            reading = False  # once: the signals after it find nothing to interrupt
            raise Interrupted

    def read_until_interrupted() -> None:
        nonlocal reading
        reading = True
        reader_pair(read_fd)[accelerated](1024)

    try:
        # Repeating: a signal that comes before the read begins is not the
        # one this is about; one will come while it waits.
        alarm(handler, 0.02, 0.02)
        with pytest.raises(Interrupted):
            read_until_interrupted()
    finally:
        os.close(read_fd)
        os.close(write_fd)


@needs_accelerator
@pytest.mark.parametrize("accelerated", [False, True], ids=["os", "accelerator"])
def test_a_write_interrupted_by_a_signal_is_made_again(
    alarm: Alarm, accelerated: bool
) -> None:
    """EINTR on a write blocked on a full pipe: the handler makes room (reads
    the pipe), and the write is made again and takes the bytes."""
    read_fd, write_fd = os.pipe()
    try:
        os.set_blocking(write_fd, False)
        fill(write_fd)
        os.set_blocking(write_fd, True)
        os.set_blocking(read_fd, False)

        def drain() -> None:
            try:
                os.read(read_fd, 1 << 20)
            except BlockingIOError:
                pass

        alarm(drain, 0.02, 0)
        assert writer_pair(write_fd)[accelerated](b"after the handler") == len(b"after the handler")
    finally:
        os.close(read_fd)
        os.close(write_fd)


# --------------------------------------------------------------- the objects


@needs_accelerator
def test_the_calls_say_their_descriptor_and_take_one_argument() -> None:
    """fd is read-only; repr names it; a call takes exactly one positional argument."""
    read = _speedups.DescriptorReader(7)
    write = _speedups.DescriptorWriter(fd=8)
    assert (read.fd, write.fd) == (7, 8)
    assert repr(read) == "<weft._speedups.DescriptorReader fd=7>"
    assert repr(write) == "<weft._speedups.DescriptorWriter fd=8>"
    with pytest.raises(AttributeError):
        read.fd = 9  # type: ignore[misc]
    calls: list[tuple[Callable[..., object], tuple[object, ...]]] = [
        (read, ()),
        (read, (1, 2)),
        (write, ()),
        (write, (b"", b"")),
    ]
    for call, args in calls:
        with pytest.raises(TypeError, match="exactly one argument"):
            call(*args)
    with pytest.raises(TypeError, match="no keyword"):
        read(size=1)  # type: ignore[call-arg]
    with pytest.raises(OverflowError):
        _speedups.DescriptorReader(2**40)
    with pytest.raises(TypeError):
        _speedups.DescriptorWriter("1")  # type: ignore[arg-type]


# ------------------------------------------------------------------ selection


def test_the_transports_use_the_accelerator_when_it_is_built() -> None:
    """Where weft._speedups imports (and WEFT_PURE_PYTHON is not set), the
    calls are its objects; where not, os's partials, and it says why."""
    read_fd, write_fd = nonblocking_pipe()
    try:
        read, write = accelerator.stream_calls(read_fd, write_fd)
    finally:
        os.close(read_fd)
        os.close(write_fd)
    if os.environ.get("WEFT_PURE_PYTHON", "") not in ("", "0") or _speedups is None:
        assert not accelerator.ACCELERATED
        assert isinstance(read, partial)
        assert read.func is os.read
        assert isinstance(write, partial)
        assert write.func is os.write
        assert accelerator.describe().startswith("reads and writes in pure Python (")
    else:
        assert accelerator.ACCELERATED
        assert isinstance(read, _speedups.DescriptorReader)
        assert isinstance(write, _speedups.DescriptorWriter)
        assert accelerator.describe() == "reads and writes in C (weft._speedups)"


def test_a_regular_file_gets_os_calls() -> None:
    """A regular file, where O_NONBLOCK does not stop a read waiting on the
    disk: os's calls, which let other threads run meanwhile."""
    with tempfile.TemporaryFile() as file:
        read, write = accelerator.stream_calls(file.fileno(), file.fileno())
    assert isinstance(read, partial)
    assert read.func is os.read
    assert isinstance(write, partial)
    assert write.func is os.write


@pytest.mark.parametrize("value", ["1", "yes"])
def test_weft_pure_python_forces_os_calls(value: str) -> None:
    """WEFT_PURE_PYTHON (any value but empty or 0) selects os's calls, and
    the reactor's transports then hold partials of os.read and os.write."""
    code = (
        "import os\n"
        "from weft.drivers._core import accelerator\n"
        "from weft.drivers.reactor import Reactor\n"
        "from weft.drivers.testing import RecordingProtocol\n"
        "reactor = Reactor()\n"
        "transport = reactor.connect_pipes(RecordingProtocol, *os.pipe())\n"
        "print(transport._recv.func is os.read, transport._send.func is os.write)\n"
        "print(accelerator.ACCELERATED, accelerator.describe())\n"
        "transport.abort(); reactor.close()\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code],
        env={**os.environ, "WEFT_PURE_PYTHON": value},
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == [
        "True True",
        "False reads and writes in pure Python (WEFT_PURE_PYTHON is set)",
    ]


# ----------------------------------------------------------- the dispatcher
#
# The accelerator's Dispatcher against the reactor loop's own Python loop:
# one turn of a Reactor whose poller reports scripted events for scripted
# streams, readers and writers, once with the reactor's dispatcher and once
# with none (the Python loop), and the same calls, in the same order, with
# the same exceptions handed to the same hooks.


#: What a turn's calls logged, in order.
Log = list[tuple[Any, ...]]
#: A poll's events.
Events = list[tuple[int, int]]


class ScriptedPoller:
    """A poller that reports ``events`` on its first poll, and nothing after."""

    name = "scripted"

    def __init__(self, events: list[tuple[int, int]]) -> None:
        self.events = events
        self.changes = 0

    def register(self, fd: int, mask: int) -> None:
        self.changes += 1

    def modify(self, fd: int, mask: int) -> None:
        self.changes += 1

    def unregister(self, fd: int) -> None:
        self.changes += 1

    def poll(self, timeout: float) -> list[tuple[int, int]]:
        events, self.events = self.events, []
        return events

    def close(self) -> None:
        pass


#: What each scripted call does: a result, or an exception to raise.
Script = dict[str, Any]


class ScriptedStream:
    """An inline reader (a stream transport, to the loop) whose calls log
    themselves and do what ``script`` says."""

    def __init__(self, fd: int, log: list[tuple[Any, ...]], script: Script) -> None:
        self.fd = fd
        self.log = log
        self.script = script
        self._protocol = self

    def act(self, name: str, *record: Any) -> Any:
        handled = sys.exc_info()[1]
        self.log.append((name, self.fd, *record, describe(handled)))
        action = self.script.get(name)
        if callable(action):
            return action()
        if isinstance(action, BaseException):
            raise action
        return action

    def _recv(self, size: int) -> bytes:
        result: bytes = self.act("recv", size)
        return result

    def data_received(self, data: bytes) -> None:
        self.act("data_received", data)

    def _eof(self) -> None:
        self.act("eof")

    def _recv_failed(self, exc: OSError) -> None:
        self.act("recv_failed", describe(exc))

    def _callback_failed(self, exc: Exception) -> None:
        self.act("callback_failed", describe(exc))


def describe(exc: BaseException | None) -> Any:
    """An exception as a log can compare it: its type and args, and its context's."""
    if exc is None:
        return None
    return (type(exc).__name__, exc.args, describe(exc.__context__))


class RecordingReactor(Reactor):
    """A reactor whose _fd_callback_failed logs, with the exception being handled."""

    log: list[tuple[Any, ...]]

    def _fd_callback_failed(self, fd: int, exc: Exception) -> None:
        self.log.append(("fd_callback_failed", fd, describe(exc), describe(sys.exc_info()[1])))
        action = getattr(self, "fd_callback_failed_raises", None)
        if action is not None:
            raise action


Scenario = Callable[[RecordingReactor, list[tuple[Any, ...]]], list[tuple[int, int]]]


def one_turn(scenario: Scenario, *, accelerated: bool) -> tuple[list[tuple[Any, ...]], Any]:
    """Run one turn of a reactor set up by ``scenario`` (which returns the
    events to report); the log, and what the turn raised (described)."""
    log: list[tuple[Any, ...]] = []
    poller = ScriptedPoller([])
    reactor = RecordingReactor(poller)
    reactor.log = log
    if not accelerated:
        reactor._dispatch = None
    poller.events = scenario(reactor, log)
    raised = None
    try:
        reactor.run_once(0)
    except BaseException as exc:
        raised = describe(exc)
    finally:
        reactor._streams.clear()
        reactor._readers.clear()
        reactor._writers.clear()
        reactor.close()
    return log, raised


def stream(reactor: Reactor, log: list[tuple[Any, ...]], fd: int, **script: Any) -> ScriptedStream:
    made = ScriptedStream(fd, log, script)
    reactor._streams[fd] = made  # type: ignore[assignment]
    return made


def callback(reactor: Reactor, log: list[tuple[Any, ...]], table: str, fd: int, action: Any = None) -> None:
    def call() -> None:
        log.append((table, fd, describe(sys.exc_info()[1])))
        if isinstance(action, BaseException):
            raise action
        if callable(action):
            action()

    getattr(reactor, f"_{table}")[fd] = call


def data_and_eof(reactor: RecordingReactor, log: Log) -> Events:
    stream(reactor, log, 10, recv=b"hello")
    stream(reactor, log, 11, recv=b"")
    return [(10, READABLE), (11, READABLE)]


def reads_that_fail(reactor: RecordingReactor, log: Log) -> Events:
    stream(reactor, log, 10, recv=BlockingIOError(11, "again"))
    stream(reactor, log, 11, recv=InterruptedError(4, "interrupted"))
    stream(reactor, log, 12, recv=ConnectionResetError(104, "reset"))
    stream(reactor, log, 13, recv=b"after them")
    return [(10, READABLE), (11, READABLE), (12, READABLE), (13, READABLE)]


def protocols_that_raise(reactor: RecordingReactor, log: Log) -> Events:
    stream(reactor, log, 10, recv=b"x", data_received=ValueError("bad data"))
    stream(reactor, log, 11, recv=b"", eof=RuntimeError("bad eof"))
    stream(reactor, log, 12, recv=b"y")
    return [(10, READABLE), (11, READABLE), (12, READABLE)]


def readers_and_writers(reactor: RecordingReactor, log: Log) -> Events:
    """Plain readers, writers, masks with errors and hang-ups, a stream fd
    with more than READABLE (its reader, not the inline read), a callback
    that raises, and an fd with nothing registered."""
    callback(reactor, log, "readers", 20)
    callback(reactor, log, "writers", 21, ValueError("writer broke"))
    callback(reactor, log, "readers", 22, KeyError("reader broke"))
    callback(reactor, log, "writers", 22)
    stream(reactor, log, 23, recv=b"not read inline")
    callback(reactor, log, "readers", 23)
    return [
        (20, READABLE),
        (21, WRITABLE),
        (22, ERROR),
        (23, READABLE | HANGUP),
        (24, READABLE),
        (22, READABLE | WRITABLE),
        (20, HANGUP),
    ]


def callbacks_that_unregister(reactor: RecordingReactor, log: Log) -> Events:
    """A protocol that closes another stream (its later event finds nothing)
    and drops the last reference to its own stream while it runs; a writer
    that removes the reader of its fd (ERROR: the writer is asked after)."""

    def close_others() -> None:
        del reactor._streams[11]
        del reactor._streams[10]  # the last reference is the loop's now

    stream(reactor, log, 10, recv=b"first", data_received=close_others)
    stream(reactor, log, 11, recv=b"never read")
    callback(reactor, log, "readers", 12, lambda: reactor._writers.pop(12))
    callback(reactor, log, "writers", 12)
    return [(10, READABLE), (11, READABLE), (12, ERROR)]


def a_read_raising_no_os_error(reactor: RecordingReactor, log: Log) -> Events:
    """Not an OSError from the read: it leaves the turn, the events after it unhandled."""
    stream(reactor, log, 10, recv=TypeError("not an OSError"))
    stream(reactor, log, 11, recv=b"never")
    return [(10, READABLE), (11, READABLE)]


def a_keyboard_interrupt(reactor: RecordingReactor, log: Log) -> Events:
    """A BaseException from a protocol leaves the turn, unhandled, the events after it too."""
    stream(reactor, log, 10, recv=b"x", data_received=KeyboardInterrupt())
    callback(reactor, log, "readers", 11)
    return [(10, READABLE), (11, READABLE)]


def a_hook_that_raises(reactor: RecordingReactor, log: Log) -> Events:
    """A hook raising in its turn: that leaves the turn, with the exception
    it was handling as its context."""
    stream(
        reactor, log, 10, recv=b"x", data_received=ValueError("first"), callback_failed=RuntimeError("hook")
    )
    stream(reactor, log, 11, recv=b"never")
    return [(10, READABLE), (11, READABLE)]


def an_fd_hook_that_raises(reactor: RecordingReactor, log: Log) -> Events:
    """The reactor's own hook raising: the same."""
    reactor.fd_callback_failed_raises = RuntimeError("fd hook")  # type: ignore[attr-defined]
    callback(reactor, log, "writers", 20, ValueError("writer broke"))
    callback(reactor, log, "readers", 21)
    return [(20, WRITABLE), (21, READABLE)]


SCENARIOS: list[Scenario] = [
    data_and_eof,
    reads_that_fail,
    protocols_that_raise,
    readers_and_writers,
    callbacks_that_unregister,
    a_read_raising_no_os_error,
    a_keyboard_interrupt,
    a_hook_that_raises,
    an_fd_hook_that_raises,
]


@needs_accelerator
@pytest.mark.parametrize("scenario", SCENARIOS, ids=lambda scenario: scenario.__name__)
def test_the_dispatcher_makes_the_python_loops_calls(scenario: Scenario) -> None:
    """The same calls, in the same order, the same exceptions to the same
    hooks (each handled while its hook runs), and the same exception out of
    the turn, with the dispatcher as with the reactor loop's Python loop."""
    assert one_turn(scenario, accelerated=True) == one_turn(scenario, accelerated=False)


@needs_accelerator
def test_the_scenarios_do_what_they_say() -> None:
    """The comparison above compares something: what the Python loop does in three of them."""
    log, raised = one_turn(data_and_eof, accelerated=False)
    assert log == [
        ("recv", 10, READ_SIZE, None),
        ("data_received", 10, b"hello", None),
        ("recv", 11, READ_SIZE, None),
        ("eof", 11, None),
    ]
    assert raised is None
    log, raised = one_turn(reads_that_fail, accelerated=True)
    reset = ("ConnectionResetError", (104, "reset"), None)
    assert [entry[0] for entry in log] == ["recv", "recv", "recv", "recv_failed", "recv", "data_received"]
    assert log[3] == ("recv_failed", 12, reset, reset)
    log, raised = one_turn(a_hook_that_raises, accelerated=True)
    assert raised == ("RuntimeError", ("hook",), ("ValueError", ("first",), None))
    assert [entry[0] for entry in log] == ["recv", "data_received", "callback_failed"]


@needs_accelerator
def test_a_reactor_uses_the_dispatcher_where_the_accelerator_is() -> None:
    """A new reactor holds a Dispatcher when the accelerator is in use, None otherwise."""
    reactor = Reactor()
    try:
        if accelerator.ACCELERATED:
            assert isinstance(reactor._dispatch, _speedups.Dispatcher)
        else:
            assert reactor._dispatch is None
    finally:
        reactor.close()


# ------------------------------------------------------ the turn, on epoll


def epoll_scenario(reactor: RecordingReactor, log: Log, fds: list[int]) -> Callable[[], None]:
    """Real descriptors in the reactor's epoll (a pipe with data for a
    stream, a writable pipe, a hung-up pipe whose reader raises), an
    always-ready descriptor, in that order; the before_dispatch to pass."""
    with_data, data_writer = nonblocking_pipe()
    os.write(data_writer, b"waiting")
    writable_reader, writable = nonblocking_pipe()
    hung_up, gone = nonblocking_pipe()
    os.close(gone)
    fds.extend([with_data, data_writer, writable_reader, writable, hung_up])
    stream(reactor, log, with_data, recv=b"scripted")
    reactor._poller.register(with_data, READABLE)
    callback(reactor, log, "writers", writable)
    reactor._poller.register(writable, WRITABLE)
    callback(reactor, log, "readers", hung_up, ValueError("reader broke"))
    reactor._poller.register(hung_up, READABLE)
    callback(reactor, log, "readers", 999)
    reactor._always_ready[999] = READABLE
    return lambda: log.append(("before_dispatch",))


def epoll_turn(accelerated: bool) -> tuple[Log, Any]:
    log: Log = []
    fds: list[int] = []
    reactor = RecordingReactor()
    reactor.log = log
    if not accelerated:
        reactor._dispatch = None
    try:
        before = epoll_scenario(reactor, log, fds)
        try:
            reactor._start_running()
            reactor._turn_for_host(0, before)
        finally:
            reactor._stop_running()
        return log, reactor._poller.poll is reactor._own_poll
    finally:
        reactor._always_ready.clear()
        for fd in fds:
            with contextlib.suppress(OSError):
                reactor._poller.unregister(fd)
            os.close(fd)
        reactor._streams.clear()
        reactor._readers.clear()
        reactor._writers.clear()
        reactor.close()


@needs_accelerator
def test_a_turn_on_epoll_makes_the_python_loops_calls() -> None:
    """The dispatcher's turn (epoll_wait in C) against epoll.poll and the
    Python loop, on real descriptors: before_dispatch first, then each
    event's calls in epoll's order, a reader's exception to the reactor's
    hook, then the always-ready descriptor's reader."""
    log, own_poll = epoll_turn(accelerated=True)
    assert own_poll  # the turn was the dispatcher's
    assert log == epoll_turn(accelerated=False)[0]
    assert log[0] == ("before_dispatch",)
    assert [entry[0] for entry in log[1:]] == [
        "recv",
        "data_received",
        "writers",
        "readers",
        "fd_callback_failed",
        "readers",
    ]
    assert log[-1] == ("readers", 999, None)


@needs_accelerator
def test_a_wrapped_poll_is_called_instead_of_the_dispatchers_wait() -> None:
    """A poller whose poll was wrapped since (a test counting turns) keeps
    being called: the dispatcher then hands out what it returns."""
    reactor = Reactor()
    polls: list[float] = []
    own = reactor._poller.poll

    def counting(timeout: float) -> list[tuple[int, int]]:
        polls.append(timeout)
        return own(timeout)

    try:
        reactor._poller.poll = counting  # type: ignore[method-assign]
        reactor.run_once(0)
        reactor.run_once(0)
    finally:
        reactor.close()
    assert polls == [0, 0]


@needs_accelerator
@pytest.mark.parametrize("accelerated", [False, True], ids=["python", "accelerator"])
def test_a_signal_during_the_wait_runs_its_handler_and_the_wait_goes_on(
    alarm: Alarm, accelerated: bool
) -> None:
    """EINTR in the turn's wait: the handler runs; what it makes ready (it
    writes to a watched pipe) is handed out in the same turn."""
    reactor = Reactor()
    if not accelerated:
        reactor._dispatch = None
    read_fd, write_fd = nonblocking_pipe()
    got: list[bytes] = []
    try:
        reactor._set_reader(read_fd, lambda: got.append(os.read(read_fd, 100)), None)
        alarm(lambda: os.write(write_fd, b"from the handler"), 0.02, 0)
        reactor.run_once(TIMEOUT)
    finally:
        reactor._set_reader(read_fd, None, None)
        reactor.close()
        os.close(read_fd)
        os.close(write_fd)
    assert got == [b"from the handler"]


@needs_accelerator
@pytest.mark.parametrize("accelerated", [False, True], ids=["python", "accelerator"])
def test_a_handler_that_raises_during_the_wait_ends_the_turn_with_it(alarm: Alarm, accelerated: bool) -> None:
    """EINTR, and the handler raises: the turn leaves with that exception."""
    reactor = Reactor()
    if not accelerated:
        reactor._dispatch = None
    waiting = False

    def handler() -> None:
        nonlocal waiting
        if waiting:
            waiting = False
            raise Interrupted

    def wait() -> None:
        nonlocal waiting
        waiting = True
        reactor.run_once(TIMEOUT)

    try:
        alarm(handler, 0.02, 0.02)
        with pytest.raises(Interrupted):
            wait()
    finally:
        reactor.close()


@needs_accelerator
def test_a_turn_within_a_turn_is_refused() -> None:
    """The dispatcher's events are in use during its turn: a callback that
    asks for another turn of the same dispatcher gets RuntimeError."""
    reactor = Reactor()
    read_fd, write_fd = nonblocking_pipe()
    raised: list[BaseException] = []

    def nested() -> None:
        os.read(read_fd, 100)
        try:
            reactor._dispatch.turn(0, None, {})
        except RuntimeError as exc:
            raised.append(exc)

    try:
        os.write(write_fd, b"x")
        reactor._set_reader(read_fd, nested, None)
        reactor.run_once(TIMEOUT)
    finally:
        reactor._set_reader(read_fd, None, None)
        reactor.close()
        os.close(read_fd)
        os.close(write_fd)
    assert [str(exc) for exc in raised] == ["turn() called from within a turn of the same dispatcher"]
