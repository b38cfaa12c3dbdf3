"""weft's C accelerator (``weft._speedups``) against ``os.read``/``os.write``, and its selection.

Each case makes the same call both ways, on descriptors in the same state,
and requires the same outcome: the same bytes or count, or an exception of
the same type with the same errno and message.  Then: the reactor's
transports use the accelerator where it is built and ``os``'s calls where it
is not, where ``WEFT_PURE_PYTHON=1`` says so, and on regular files.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator
from functools import partial
from typing import Any

import pytest

from tests.support import TIMEOUT
from tests.support.accelerator import SPEEDUPS, Alarm, Interrupted, fill, needs_accelerator, nonblocking_pipe
from weft.drivers._core import accelerator

_speedups: Any = SPEEDUPS

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
        assert read(Three()) == b"bcd"
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
        read.fd = 9
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
        read(size=1)
    with pytest.raises(OverflowError):
        _speedups.DescriptorReader(2**40)
    with pytest.raises(TypeError):
        _speedups.DescriptorWriter("1")


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
    """WEFT_PURE_PYTHON (any value but empty or 0) selects the pure path: the
    reactor's transports hold partials of os.read and os.write, and the
    reactor no dispatcher (its loop hands out events in Python)."""
    code = (
        "import os\n"
        "from weft.drivers._core import accelerator\n"
        "from weft.drivers.reactor import Reactor\n"
        "from weft.drivers.testing import RecordingProtocol\n"
        "reactor = Reactor()\n"
        "transport = reactor.connect_pipes(RecordingProtocol, *os.pipe())\n"
        "print(transport._recv.func is os.read, transport._send.func is os.write, reactor._dispatch)\n"
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
        "True True None",
        "False reads and writes in pure Python (WEFT_PURE_PYTHON is set)",
    ]


@needs_accelerator
@pytest.mark.parametrize("value", ["", "0"])
def test_weft_pure_python_empty_or_zero_leaves_the_accelerator_on(value: str) -> None:
    """WEFT_PURE_PYTHON set to nothing or 0 is as if unset: the accelerator is used."""
    done = subprocess.run(
        [sys.executable, "-c", "from weft.drivers._core import accelerator; print(accelerator.ACCELERATED)"],
        env={**os.environ, "WEFT_PURE_PYTHON": value},
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        check=False,
    )
    assert (done.returncode, done.stdout) == (0, "True\n"), done.stderr
