"""weft's io_uring binding (drivers/completion/_uring.py): every operation the
completion driver uses, against the real kernel, and the refusal path.

Each test waits for completions with a bounded loop (:func:`wait_for`), never
a sleep; a kernel that refuses io_uring skips the operation tests (the
refusal tests run everywhere, with the setup call forced to fail).
"""

from __future__ import annotations

import ctypes
import errno
import os
import socket
import struct
import threading
from collections.abc import Callable, Iterator

import pytest

from tests.support import TIMEOUT
from weft.drivers.completion import _uring
from weft.drivers.completion._uring import Ring, RingThreadError, RingUnavailableError, ring_span
from weft.protocols.errors import WeftError

Completion = tuple[int, int, int]


def _usable() -> str | None:
    try:
        Ring(4, 8).close()
    except RingUnavailableError as exc:
        return str(exc)
    return None


_REFUSED = _usable()
needs_ring = pytest.mark.skipif(_REFUSED is not None, reason=f"io_uring refused here: {_REFUSED}")


@pytest.fixture
def ring() -> Iterator[Ring]:
    made = Ring(8, 64)
    try:
        yield made
    finally:
        made.close()


def wait_for(ring: Ring, count: int) -> list[Completion]:
    """Submit and reap until ``count`` completions came (at most TIMEOUT seconds)."""
    got: list[Completion] = []
    for _ in range(int(TIMEOUT / 0.05)):
        ring.submit_and_wait(0.05)
        got.extend(ring.reap())
        if len(got) >= count:
            return got
    raise TimeoutError(f"{len(got)} of {count} completions came: {got}")


def by_user_data(completions: list[Completion]) -> dict[int, Completion]:
    return {completion[0]: completion for completion in completions}


# ------------------------------------------------------------------ refusal


@pytest.mark.parametrize("code", [errno.ENOSYS, errno.EPERM, errno.ENOMEM])
def test_a_refused_setup_raises_a_weft_error_saying_why(monkeypatch: pytest.MonkeyPatch, code: int) -> None:
    """A kernel without io_uring, io_uring_disabled or seccomp, a memory limit:
    each is a RingUnavailableError (a WeftError and an OSError) with its errno
    and a one-line reason, never a crash."""

    def refuse(entries: int, params: int) -> int:
        raise OSError(code, os.strerror(code))

    monkeypatch.setattr(_uring.syscalls, "setup", refuse)
    with pytest.raises(RingUnavailableError) as raised:
        Ring()
    assert isinstance(raised.value, WeftError)
    assert raised.value.errno == code
    assert "\n" not in str(raised.value)
    assert errno.errorcode[code] in str(raised.value)


def test_without_libc_syscall_the_ring_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    """Where the system calls cannot be reached (not Linux, an unknown
    architecture), making a ring raises with that reason."""
    calls = _uring._SystemCalls()
    calls._syscall = None
    calls.reason = "io_uring is Linux's; this is plan9"
    monkeypatch.setattr(_uring, "syscalls", calls)
    with pytest.raises(RingUnavailableError, match="plan9"):
        Ring()


def test_ring_span_counts_across_the_32_bit_wrap() -> None:
    """The kernel's head and tail are free-running 32-bit counters: the
    distance between them is right when the tail has wrapped past 2**32."""
    assert ring_span(5, 9) == 4
    assert ring_span(0xFFFFFFFE, 2) == 4
    assert ring_span(0xFFFFFFFF, 0xFFFFFFFF) == 0


# --------------------------------------------------------------- operations


@needs_ring
def test_completions_wrap_around_the_queues(ring: Ring) -> None:
    """Many more operations than the queues have slots, in batches: every
    completion comes back once, in order, as the indices wrap."""
    seen: list[int] = []
    for batch in range(40):
        for index in range(6):
            ring.prep_nop(batch * 6 + index)
        seen.extend(completion[0] for completion in wait_for(ring, 6))
    assert seen == list(range(240))


@needs_ring
def test_preparing_more_than_the_queue_holds_submits_early(ring: Ring) -> None:
    """A full submission queue is handed to the kernel before the next entry
    is written, so nothing prepared is overwritten."""
    for index in range(20):
        ring.prep_nop(index)
    assert sorted(c[0] for c in wait_for(ring, 20)) == list(range(20))


@needs_ring
def test_a_wait_with_a_timeout_returns_empty_handed(ring: Ring) -> None:
    """submit_and_wait with a timeout and nothing in flight returns, and reaps nothing."""
    ring.submit_and_wait(0.01)
    assert ring.reap() == []


@needs_ring
def test_timeout_operation_expires(ring: Ring) -> None:
    """A TIMEOUT completes with -ETIME once its time has passed."""
    when = _uring.timespec(0.01)
    ring.prep_timeout(when, 1)
    assert wait_for(ring, 1) == [(1, -errno.ETIME, 0)]


@needs_ring
def test_cancel_ends_a_pending_operation(ring: Ring) -> None:
    """ASYNC_CANCEL of a receive that waits: the receive ends with -ECANCELED,
    the cancel with 0; a cancel of nothing is -ENOENT."""
    left, right = socket.socketpair()
    with left, right:
        buffer = bytearray(16)
        ring.prep_recv(left.fileno(), _uring.writable_address(buffer), 16, 1)
        ring.submit()
        ring.prep_cancel(1, 2)
        results = by_user_data(wait_for(ring, 2))
        assert results[1][1] == -errno.ECANCELED
        assert results[2][1] == 0
        ring.prep_cancel(1, 3)
        assert wait_for(ring, 1) == [(3, -errno.ENOENT, 0)]


@needs_ring
def test_send_and_recv_on_a_socket(ring: Ring) -> None:
    """SEND from a bytes object, RECV into a bytearray: the bytes arrive whole."""
    left, right = socket.socketpair()
    with left, right:
        data = b"completion model" * 4
        buffer = bytearray(256)
        ring.prep_recv(right.fileno(), _uring.writable_address(buffer), 256, 1)
        ring.prep_send(left.fileno(), _uring.address_of_bytes(data), len(data), 2)
        results = by_user_data(wait_for(ring, 2))
        assert results[2][1] == len(data)
        assert bytes(buffer[: results[1][1]]) == data


@needs_ring
def test_send_to_a_gone_peer_is_epipe_not_a_signal(ring: Ring) -> None:
    """A SEND after the peer closed fails with -EPIPE (MSG_NOSIGNAL: no SIGPIPE)."""
    left, right = socket.socketpair()
    with left:
        right.close()
        data = b"x"
        ring.prep_send(left.fileno(), _uring.address_of_bytes(data), 1, 1)
        assert wait_for(ring, 1)[0][1] == -errno.EPIPE


@needs_ring
def test_read_and_write_on_a_pipe(ring: Ring) -> None:
    """READ waits on an empty non-blocking pipe (the kernel polls for it) and
    gets what a WRITE puts in; a READ at EOF completes with 0."""
    read_end, write_end = os.pipe()
    os.set_blocking(read_end, False)
    try:
        buffer = bytearray(64)
        ring.prep_read(read_end, _uring.writable_address(buffer), 64, 1)
        ring.submit_and_wait(0.01)
        assert ring.reap() == []
        data = b"through a pipe"
        ring.prep_write(write_end, _uring.address_of_bytes(data), len(data), 2)
        results = by_user_data(wait_for(ring, 2))
        assert results[2][1] == len(data)
        assert bytes(buffer[: results[1][1]]) == data
        os.close(write_end)
        write_end = -1
        ring.prep_read(read_end, _uring.writable_address(buffer), 64, 3)
        assert wait_for(ring, 1) == [(3, 0, 0)]
    finally:
        os.close(read_end)
        if write_end >= 0:
            os.close(write_end)


@needs_ring
def test_poll_add_one_shot_and_multishot(ring: Ring) -> None:
    """POLL_ADD reports readiness with the poll bits; a multishot poll stays
    armed (IORING_CQE_F_MORE) and reports again on new data; POLL_REMOVE ends it."""
    left, right = socket.socketpair()
    with left, right:
        ring.prep_poll_add(left.fileno(), 1, 1)  # POLLIN, once
        ring.prep_poll_add(left.fileno(), 1, 2, multishot=True)
        right.send(b"a")
        results = by_user_data(wait_for(ring, 2))
        assert results[1] == (1, 1, 0)
        assert results[2][1] & 1
        assert results[2][2] & _uring.IORING_CQE_F_MORE
        left.recv(1)
        right.send(b"b")
        assert wait_for(ring, 1)[0][:2] == (2, 1)
        ring.prep_poll_remove(2, 3)
        results = by_user_data(wait_for(ring, 2))
        assert results[3][1] == 0
        assert results[2][1] == -errno.ECANCELED
        assert not results[2][2] & _uring.IORING_CQE_F_MORE


@needs_ring
def test_accept_multishot_and_connect(ring: Ring) -> None:
    """A multishot ACCEPT gives one completion (a new fd) per connection and
    stays armed; CONNECT from a ring completes with 0."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    port = listener.getsockname()[1]
    clients = [socket.socket() for _ in range(3)]
    accepted: list[int] = []
    try:
        ring.prep_accept(listener.fileno(), 1, multishot=True)
        # sockaddr_in: the family in host order, the port in network order.
        loopback = socket.inet_aton("127.0.0.1")
        address = struct.pack("=H", socket.AF_INET) + struct.pack("!H4s8x", port, loopback)
        sockaddr = ctypes.create_string_buffer(address, len(address))
        ring.prep_connect(clients[0].fileno(), sockaddr, len(address), 2)
        results = wait_for(ring, 2)
        connected = [c for c in results if c[0] == 2]
        assert connected == [(2, 0, 0)]
        for client in clients[1:]:
            client.connect(("127.0.0.1", port))
        while len(accepted) < 3:
            for user_data, res, flags in results if not accepted else wait_for(ring, 1):
                if user_data == 1:
                    assert res >= 0
                    assert flags & _uring.IORING_CQE_F_MORE
                    accepted.append(res)
            results = []
        assert not os.get_blocking(accepted[0])
    finally:
        for fd in accepted:
            os.close(fd)
        for client in clients:
            client.close()
        listener.close()


@needs_ring
def test_shutdown_and_close(ring: Ring) -> None:
    """SHUTDOWN(SHUT_WR) makes the peer read EOF; CLOSE closes the descriptor."""
    left, right = socket.socketpair()
    with right:
        ring.prep_shutdown(left.fileno(), socket.SHUT_WR, 1)
        assert wait_for(ring, 1) == [(1, 0, 0)]
        assert right.recv(1) == b""
        ring.prep_close(left.detach(), 2)
        assert wait_for(ring, 1) == [(2, 0, 0)]


@needs_ring
def test_a_closed_ring_refuses_new_operations(ring: Ring) -> None:
    """Preparing on a closed ring is a RingUnavailableError, not a crash."""
    ring.close()
    with pytest.raises(RingUnavailableError):
        ring.prep_nop(1)


# ------------------------------------------------------ prebuilt entries


@needs_ring
def test_prebuilt_receive_and_send_entries_are_pushed_again_and_again(ring: Ring) -> None:
    """One receive entry and one send entry, made once, pushed for each of many
    messages of different lengths: push_bytes points the send at each bytes
    object in turn, and every message arrives whole."""
    left, right = socket.socketpair()
    with left, right:
        buffer = bytearray(256)
        receive = Ring.recv_entry(right.fileno(), _uring.writable_address(buffer), 256, 1)
        send = Ring.send_entry(left.fileno(), 2)
        for length in (1, 17, 64, 255):
            data = bytes(range(length))
            ring.push(receive)
            ring.push_bytes(send, data)
            results = by_user_data(wait_for(ring, 2))
            assert results[2][1] == length
            assert bytes(buffer[: results[1][1]]) == data


@needs_ring
def test_prebuilt_entries_on_a_pipe_are_read_and_write(ring: Ring) -> None:
    """Made for a descriptor that is not a socket, the entries are READ and
    WRITE at the current position, and move bytes through a pipe."""
    read_end, write_end = os.pipe()
    try:
        buffer = bytearray(64)
        ring.push(Ring.recv_entry(read_end, _uring.writable_address(buffer), 64, 1, on_socket=False))
        data = b"prebuilt, through a pipe"
        ring.push_bytes(Ring.send_entry(write_end, 2, on_socket=False), data)
        results = by_user_data(wait_for(ring, 2))
        assert results[2][1] == len(data)
        assert bytes(buffer[: results[1][1]]) == data
    finally:
        os.close(read_end)
        os.close(write_end)


@needs_ring
def test_pushing_more_than_the_queue_holds_submits_early(ring: Ring) -> None:
    """push hands a full submission queue to the kernel before it writes the
    next entry, as the prep_* methods do: nothing pushed is overwritten."""
    for index in range(20):
        ring.push(Ring.entry(_uring.Op.NOP, -1, index))
    assert sorted(c[0] for c in wait_for(ring, 20)) == list(range(20))


@needs_ring
def test_a_closed_ring_refuses_pushes(ring: Ring) -> None:
    """Pushing onto a closed ring is a RingUnavailableError, not a crash."""
    entry = Ring.entry(_uring.Op.NOP, -1, 1)
    ring.close()
    with pytest.raises(RingUnavailableError):
        ring.push(entry)
    with pytest.raises(RingUnavailableError):
        ring.push_bytes(Ring.send_entry(0, 1), b"x")


@needs_ring
def test_a_run_of_completions_across_the_queue_end_comes_back_in_order() -> None:
    """Completions reaped in one pass where the run crosses the end of the
    completion queue (it is copied in two parts): every one, in order."""
    ring = Ring(8, 16)
    try:
        for index in range(13):
            ring.prep_nop(index)
            if index % 8 == 7:
                ring.submit()
        assert [c[0] for c in wait_for(ring, 13)] == list(range(13))
        for index in range(13, 26):  # head at 13 of 16: this run wraps
            ring.prep_nop(index)
            if index % 8 == 7:
                ring.submit()
        ring.submit()
        for _ in range(int(TIMEOUT / 0.05)):
            if ring.ready() >= 13:
                break
            ring.submit_and_wait(0.05)
        assert [c[0] for c in ring.reap()] == list(range(13, 26))
    finally:
        ring.close()


@needs_ring
def test_a_failed_enter_raises_the_kernels_error(ring: Ring) -> None:
    """io_uring_enter on the hot path returns its raw result: a real failure
    (here EBADF, a descriptor that is no ring) still comes out as an OSError
    with the kernel's errno, and an expired wait (ETIME) does not."""
    ring.submit()  # the ring is enabled (and owned) by its first enter
    real = ring.fd
    ring.fd = -1
    try:
        with pytest.raises(OSError, match="Bad file descriptor") as raised:
            ring.submit_and_wait(0.01)
        assert raised.value.errno == errno.EBADF
    finally:
        ring.fd = real
    assert ring.submit_and_wait(0.01) == 0


# ------------------------------------------------------------ quick sends


def drain_nonblocking(sock: socket.socket) -> bytes:
    """Everything ``sock`` holds now, without waiting for more."""
    sock.setblocking(False)
    got = b""
    try:
        while chunk := sock.recv(1 << 20):
            got += chunk
    except BlockingIOError:
        pass
    return got


@needs_ring
def test_a_quick_send_that_goes_whole_posts_no_completion(ring: Ring) -> None:
    """A quick send the socket takes whole is over when submit() returns: no
    completion, and the peer already holds every byte."""
    left, right = socket.socketpair()
    with left, right:
        data = b"quick and quiet"
        ring.push_bytes(Ring.quick_send_entry(left.fileno(), 7), data)
        ring.submit()
        assert ring.ready() == 0
        assert drain_nonblocking(right) == data
        ring.submit_and_wait(0.01)
        assert ring.reap() == []


@needs_ring
def test_a_quick_send_cut_short_reports_exactly_what_went(ring: Ring) -> None:
    """A quick send larger than the socket takes stops at once and reports,
    as its only completion, the count the peer can read; with no room left,
    the next reports -EAGAIN and sends nothing."""
    left, right = socket.socketpair()
    with left, right:
        left.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
        data = bytes(range(256)) * 4096  # 1 MiB
        entry = Ring.quick_send_entry(left.fileno(), 7)
        ring.push_bytes(entry, data)
        ring.submit()
        [(user_data, sent, _flags)] = ring.reap()
        assert user_data == 7
        assert 0 < sent < len(data)
        ring.push_bytes(entry, b"no room")
        ring.submit()
        assert ring.reap() == [(7, -errno.EAGAIN, 0)]
        assert drain_nonblocking(right) == data[:sent]


@needs_ring
def test_a_quick_send_to_a_gone_peer_reports_the_error(ring: Ring) -> None:
    """A quick send that fails outright reports -errno (EPIPE: no SIGPIPE)."""
    left, right = socket.socketpair()
    with left:
        right.close()
        ring.push_bytes(Ring.quick_send_entry(left.fileno(), 7), b"x")
        ring.submit()
        assert ring.reap() == [(7, -errno.EPIPE, 0)]


@needs_ring
def test_a_withdrawn_send_completes_as_a_no_op(ring: Ring) -> None:
    """withdraw() turns a send the kernel has not seen into a no-op: its
    completion comes back with res 0 (its MSG_* flags are not taken for the
    no-op's own), and nothing reaches the peer; once handed over, an entry
    can no longer be withdrawn."""
    left, right = socket.socketpair()
    with left, right:
        sequence = ring.push_bytes(Ring.send_entry(left.fileno(), 7), b"never sent")
        assert ring.withdraw(sequence)
        assert wait_for(ring, 1) == [(7, 0, 0)]
        assert drain_nonblocking(right) == b""
        assert not ring.withdraw(sequence)


@needs_ring
def test_a_withdrawn_quick_send_stays_silent(ring: Ring) -> None:
    """withdraw() keeps a quick send's silence: the no-op it becomes posts no
    completion, and nothing reaches the peer."""
    left, right = socket.socketpair()
    with left, right:
        sequence = ring.push_bytes(Ring.quick_send_entry(left.fileno(), 7), b"never sent")
        assert ring.withdraw(sequence)
        ring.submit()
        ring.submit_and_wait(0.01)
        assert ring.reap() == []
        assert drain_nonblocking(right) == b""


@needs_ring
def test_this_kernel_finishes_quick_sends_in_the_enter() -> None:
    """The probe the driver relies on holds on the kernel the tests run on
    (io_uring's MSG_DONTWAIT is final there since before 5.19)."""
    assert _uring.quick_sends_work()


# ----------------------------------------------------------------- threads


@needs_ring
def test_a_single_issuer_ring_belongs_to_the_first_thread_that_enters() -> None:
    """Made on one thread, entered first on another: that one owns it; the
    maker's enter is then refused with a RingThreadError (nothing submitted,
    the entry still pending), and the owner goes on as before."""
    ring = Ring(8, 64)
    try:
        if not ring.single_issuer:
            pytest.skip("this kernel has no single-issuer rings (Linux 6.1)")
        assert ring.owner is None
        ring.prep_nop(1)
        entered = threading.Thread(target=ring.submit)
        entered.start()
        entered.join(TIMEOUT)
        assert ring.owner == entered.ident
        ring.prep_nop(2)
        with pytest.raises(RingThreadError, match="belongs to thread") as raised:
            ring.submit()
        assert isinstance(raised.value, WeftError)
        assert ring.pending == 1
        # A thread made later is a stranger too, even if it reuses the
        # owner's ident: the kernel knows the task, not Python's ident.
        errors: list[BaseException] = []
        later = threading.Thread(target=_record, args=(errors, ring.submit))
        later.start()
        later.join(TIMEOUT)
        assert [type(error) for error in errors] == [RingThreadError]
    finally:
        ring.close()


def _record(errors: list[BaseException], call: Callable[[], object]) -> None:
    try:
        call()
    except BaseException as exc:  # recorded for the test to check
        errors.append(exc)


@needs_ring
def test_a_ring_for_any_thread_is_entered_from_several() -> None:
    """single_issuer=False: any thread may enter (one at a time), and the
    completions come back to whoever reaps."""
    ring = Ring(8, 64, single_issuer=False)
    try:
        assert not ring.single_issuer
        assert ring.owner is None
        ring.prep_nop(1)
        entered = threading.Thread(target=ring.submit)
        entered.start()
        entered.join(TIMEOUT)
        ring.prep_nop(2)
        assert sorted(c[0] for c in wait_for(ring, 2)) == [1, 2]
        assert ring.owner is None
    finally:
        ring.close()


@needs_ring
def test_an_older_kernel_gets_the_next_setup() -> None:
    """A kernel that refuses the single-issuer flags (EINVAL, before 6.1) gets
    the ring without them: entered from any thread, as before."""
    tried: list[int] = []
    real = _uring.syscalls.setup

    def refuse_new_flags(entries: int, params: int) -> int:
        flags = struct.unpack_from("<I", ctypes.string_at(params, 12), 8)[0]
        tried.append(flags)
        if flags & (1 << 12):
            raise OSError(errno.EINVAL, os.strerror(errno.EINVAL))
        return real(entries, params)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(_uring.syscalls, "setup", refuse_new_flags)
        ring = Ring(8, 64)
    try:
        assert len(tried) == 2
        assert not ring.single_issuer
        ring.prep_nop(1)
        assert wait_for(ring, 1) == [(1, 0, 0)]
    finally:
        ring.close()
