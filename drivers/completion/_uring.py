"""weft's own io_uring binding: three system calls through ctypes, and the rings through mmap.

No compiled code, so it installs with pip wherever weft does (x86_64,
aarch64 and the other Linux architectures that number the calls
425/426/427).  It does only what the completion driver needs:

* :class:`Ring` sets up a ring (``io_uring_setup``), maps its submission
  and completion queues and its submission-entry array into Python
  (``mmap``; one mapping for both queues, ``IORING_FEAT_SINGLE_MMAP``),
  prepares entries (``prep_*``: one ``struct.pack_into`` each, straight into
  the shared array; on the hot paths, :meth:`Ring.push` copies an entry made
  once per connection and :meth:`Ring.push_bytes` patches only a send's
  address and length), submits them and waits with a timeout in one
  ``io_uring_enter`` (``IORING_ENTER_EXT_ARG``), and reaps completions (one
  copy and one unpacking pass per run of them).
* The ring owns no Python objects.  Whoever prepares an operation keeps
  what its addresses point at (a buffer, a ``sockaddr``, a timespec)
  referenced until the operation's completion arrives: the kernel owns that
  memory until then.  The driver maps each ``user_data`` to the object that
  waits for it.
* A *quick send* (:meth:`Ring.quick_send_entry`) is over when the
  ``io_uring_enter`` that hands it over returns, and posts a completion
  only if it did not send every byte; :func:`quick_sends_work` asks the
  kernel, once, whether it behaves so.
* A ring is single-issuer where the kernel offers it (Linux 6.1): the first
  thread that enters the kernel with it owns it, and another's enter is a
  :class:`RingThreadError`.  Its deferred task work means completions are
  posted only when that thread waits for them.

Why not PyPI's ``liburing``?  When this was written it shipped one x86_64
wheel and no source, was marked Alpha, needed Linux 6.14, and three of its
bugs showed up in a loopback echo (see https://github.com/weft-project/weft/blob/main/docs/drivers-completion.md).
Why not ``pyuring``?  It submits and waits per operation, which is what
batching is meant to avoid.

Refusal is an exception, never a crash: a kernel without io_uring
(``ENOSYS``), ``kernel.io_uring_disabled`` (``EPERM``), a seccomp profile
(``EPERM``/``ENOSYS``), a memory limit (``ENOMEM``) all raise
:class:`RingUnavailableError` from :class:`Ring`'s constructor, with the
reason in one line.

Memory ordering: the queues are read and written with plain loads and
stores.  On x86_64 (total store order) that is what liburing's barriers
compile to.  Every submission is made visible to the kernel by the
``io_uring_enter`` call of the same thread, so submission needs no fence on
any architecture; completions are read only after such a call returns.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import functools
import mmap
import os
import platform
import socket
import struct
import sys
import threading
from collections.abc import Callable
from functools import partial
from typing import Any, overload

from weft.drivers._core import accelerator
from weft.protocols.errors import InvalidStateError, WeftError

__all__ = [
    "IORING_ACCEPT_MULTISHOT",
    "IORING_ASYNC_CANCEL_ALL",
    "IORING_ASYNC_CANCEL_ANY",
    "IORING_ASYNC_CANCEL_FD",
    "IORING_CQE_F_MORE",
    "IORING_POLL_ADD_MULTI",
    "AcceleratedRing",
    "Op",
    "Ring",
    "RingThreadError",
    "RingUnavailableError",
    "address_of_bytes",
    "new_ring",
    "quick_sends_work",
    "ring_span",
    "unpack_completions",
]

# ---------------------------------------------------------------- constants

#: io_uring_setup, io_uring_enter, io_uring_register: the generic numbers,
#: the same on every Linux architecture weft names here.
_SYSCALLS = {"setup": 425, "enter": 426, "register": 427}
#: Architectures whose tables number them otherwise (alpha, MIPS, ia64).
_OTHER_NUMBERING = ("alpha", "mips", "ia64")


class Op:
    """The opcodes used (``enum io_uring_op``)."""

    NOP = 0
    POLL_ADD = 6
    POLL_REMOVE = 7
    TIMEOUT = 11
    ACCEPT = 13
    ASYNC_CANCEL = 14
    CONNECT = 16
    CLOSE = 19
    READ = 22
    WRITE = 23
    SEND = 26
    RECV = 27
    SHUTDOWN = 34


# Setup flags.
_SETUP_CQSIZE = 1 << 3
_SETUP_CLAMP = 1 << 4
_SETUP_R_DISABLED = 1 << 6
_SETUP_SUBMIT_ALL = 1 << 7
_SETUP_COOP_TASKRUN = 1 << 8
_SETUP_SINGLE_ISSUER = 1 << 12
_SETUP_DEFER_TASKRUN = 1 << 13
# Features.
_FEAT_SINGLE_MMAP = 1 << 0
_FEAT_NODROP = 1 << 1
_FEAT_EXT_ARG = 1 << 8
# io_uring_register opcodes.
_REGISTER_ENABLE_RINGS = 12
# Enter flags.
_ENTER_GETEVENTS = 1 << 0
_ENTER_EXT_ARG = 1 << 3
# mmap offsets.
_OFF_SQ_RING = 0
_OFF_SQES = 0x10000000

#: ``len`` of a POLL_ADD: stay armed, one completion per readiness.
IORING_POLL_ADD_MULTI = 1 << 0
#: ``ioprio`` of an ACCEPT: stay armed, one completion per connection.
IORING_ACCEPT_MULTISHOT = 1 << 0
#: Cancel flags: every match, match by fd, match anything.
IORING_ASYNC_CANCEL_ALL = 1 << 0
IORING_ASYNC_CANCEL_FD = 1 << 1
IORING_ASYNC_CANCEL_ANY = 1 << 2
#: A completion flag: more completions will come for this operation.
IORING_CQE_F_MORE = 1 << 1

_MSG_NOSIGNAL = 0x4000
_MSG_DONTWAIT = 0x40
_MSG_WAITALL = 0x100
#: An entry's flags: post no completion if it succeeds (Linux 5.17).
_IOSQE_CQE_SKIP_SUCCESS = 1 << 6
#: ``off`` of a READ/WRITE: the file's current position (a pipe has none).
_CURRENT_POSITION = 0xFFFFFFFFFFFFFFFF

# struct io_uring_sqe (64 bytes): opcode, flags, ioprio, fd, off, addr, len,
# op_flags, user_data, buf_index, personality, file_index, addr3, pad.
_SQE = struct.Struct("<BBHiQQIIQHHiQQ")
# The fields of an entry that change between two sends of one connection:
# addr (offset 16) and len (offset 24).
_ADDR_LEN = struct.Struct("<QI")
_ADDR_AT = 16
# Where an entry's operation flags are (msg_flags, poll events...).
_OP_FLAGS_AT = 28
# struct io_uring_cqe (16 bytes): user_data, res, flags.
_CQE = struct.Struct("<QiI")
# struct io_uring_params (120 bytes): 10 u32, then the SQ and CQ offsets.
_PARAMS = struct.Struct("<10I" + "8IQ" + "8IQ")
# struct io_uring_getevents_arg: sigmask, sigmask_sz, min_wait_usec, ts.
_GETEVENTS_ARG = struct.Struct("<QIIQ")
# struct __kernel_timespec.
_TIMESPEC = struct.Struct("<qq")
_U32 = 0xFFFFFFFF
#: io_uring_enter's errors that are not failures: the wait expired or was
#: interrupted, or the completion queue is full (reap, then enter again).
_NOT_FAILURES = frozenset({errno.ETIME, errno.EINTR, errno.EAGAIN, errno.EBUSY})

#: The setups tried, best first; a kernel that refuses one (EINVAL: it does
#: not know a flag) gets the next.  All take a completion queue of the size
#: asked (CQSIZE, CLAMP).
#:
#: * Linux 6.1 and later: SINGLE_ISSUER (one thread submits and waits, so the
#:   kernel skips the locking that several would need) and DEFER_TASKRUN (the
#:   kernel's work to finish an operation, the receive's copy among it, waits
#:   until that thread asks for completions, and is then done in one go at
#:   most 20 at a time, instead of interrupting it whenever data arrives).
#:   R_DISABLED: the ring is made disabled and enabled by the first thread that
#:   enters it, which becomes its own (see :class:`RingThreadError`).
#: * Linux 5.19 and 6.0: COOP_TASKRUN (completions are posted when the loop
#:   enters the kernel anyway, not by interrupting it).
#: * Older kernels are refused later, for want of the features weft needs.
#:
#: SUBMIT_ALL: one bad entry does not stop the batch behind it.
_SETUPS = (
    _SETUP_CQSIZE | _SETUP_CLAMP | _SETUP_SUBMIT_ALL | _SETUP_SINGLE_ISSUER | _SETUP_DEFER_TASKRUN
    | _SETUP_R_DISABLED,
    _SETUP_CQSIZE | _SETUP_CLAMP | _SETUP_SUBMIT_ALL | _SETUP_COOP_TASKRUN,
    _SETUP_CQSIZE | _SETUP_CLAMP,
)  # fmt: skip
#: What a single-issuer ring falls back to when asked to serve any thread.
_ANY_THREAD_SETUPS = _SETUPS[1:]

# What io_uring_enter's last two arguments are when there is no extra
# argument: a null pointer and a zero size, as ctypes objects of full width
# (see _SystemCalls.raw_enter).
_NULL = ctypes.c_void_p(None)
_NO_SIZE = ctypes.c_size_t(0)
_GETEVENTS_SIZE = ctypes.c_size_t(_GETEVENTS_ARG.size)


class RingUnavailableError(WeftError, OSError):
    """io_uring cannot be used here: the kernel lacks it, or a policy refuses it.

    ``errno`` is the system call's error; the message says what it means and
    what to do (use the reactor, or lift the restriction).
    """


class RingThreadError(InvalidStateError):
    """A single-issuer ring was entered from a thread that is not its own.

    A ring made single-issuer (the default where the kernel offers it,
    Linux 6.1 and later) belongs to the first thread that enters the kernel
    with it: only that thread may submit and wait.  The kernel refuses any
    other (``EEXIST``), and nothing was submitted.  Run, turn and close the
    ring's runtime on one thread; other threads reach it through
    ``call_soon_threadsafe``, which only writes an eventfd.
    """


def _explain(code: int) -> str:
    if code == errno.ENOSYS:
        return "this kernel has no io_uring, or a seccomp profile hides it (ENOSYS)"
    if code == errno.EPERM:
        return (
            "io_uring is refused: the sysctl kernel.io_uring_disabled is set, or a seccomp "
            "profile (a container's) forbids it (EPERM)"
        )
    if code == errno.ENOMEM:
        return "the kernel refused the ring's memory (ENOMEM: RLIMIT_MEMLOCK or memory cgroup)"
    if code == errno.EINVAL:
        return "this kernel's io_uring lacks what weft needs (EINVAL: Linux 5.19 or later is needed)"
    return f"io_uring_setup failed: {os.strerror(code)} ({errno.errorcode.get(code, code)})"


# ------------------------------------------------------------- system calls


class _SystemCalls:
    """The three system calls, bound once through libc's ``syscall``.

    Tests replace :data:`syscalls` (or its ``setup``) to force a refusal.
    """

    def __init__(self) -> None:
        self.reason: str | None = None
        if not sys.platform.startswith("linux"):
            self.reason = f"io_uring is Linux's; this is {sys.platform}"
        elif platform.machine().lower().startswith(_OTHER_NUMBERING):
            machine = platform.machine()
            self.reason = f"weft's io_uring binding does not know the system-call numbers of {machine}"
        self._syscall: Any = None
        self._unconverted: Any = None
        if self.reason is None:
            try:
                libc = ctypes.CDLL(None, use_errno=True)
                syscall = libc.syscall
                unconverted = libc["syscall"]  # a function object of its own
            except (OSError, AttributeError) as exc:
                self.reason = f"libc's syscall() cannot be reached through ctypes: {exc}"
            else:
                syscall.restype = ctypes.c_long
                self._syscall = syscall
                # The same function for the hot path, with no argtypes (see raw_enter).
                unconverted.restype = ctypes.c_long
                self._unconverted = unconverted

    def _call(self, number: int, *args: int) -> int:
        if self._syscall is None:
            raise RingUnavailableError(errno.ENOSYS, self.reason or "io_uring is not available")
        result: int = self._syscall(number, *map(ctypes.c_long, args))
        if result < 0:
            code = ctypes.get_errno()
            raise OSError(code, os.strerror(code))
        return result

    def setup(self, entries: int, params_address: int) -> int:
        """``io_uring_setup``: the ring's fd."""
        return self._call(_SYSCALLS["setup"], entries, params_address)

    def enter(self, fd: int, to_submit: int, min_complete: int, flags: int, arg: int, size: int) -> int:
        """``io_uring_enter``: how many entries the kernel took."""
        return self._call(_SYSCALLS["enter"], fd, to_submit, min_complete, flags, arg, size)

    def register(self, fd: int, opcode: int, arg: int, count: int) -> int:
        """``io_uring_register``."""
        return self._call(_SYSCALLS["register"], fd, opcode, arg, count)

    def raw_enter(self) -> Callable[[int, int, int, int, Any, Any], int]:
        """``io_uring_enter`` for a ring's hot path: ``(fd, to_submit,
        min_complete, flags, arg, size)``, returning the raw result (-1 with
        ``ctypes.get_errno()`` set on failure) rather than raising.

        ``arg`` and ``size`` must be ctypes objects (a ``c_void_p`` and a
        ``c_size_t``, made once), the other four plain ints.  It runs once
        per turn of the loop, so ctypes is left no argument to convert:
        declared ``argtypes`` call a converter per argument, about 1,100
        instructions each (a third of a microsecond), which made this call
        cost three times what it does now.  An int without ``argtypes``
        travels as a C int, widened into its 64-bit register; the four ints
        here are ``unsigned int`` and ``u32`` in the kernel (fd, to_submit,
        min_complete, flags), which reads only their low 32 bits.  The
        pointer and the size are 64 bits wide and the size is the call's
        seventh argument, on the stack on x86_64, where an int would fill
        only half its slot: hence ctypes objects of full width for those,
        and for the system-call number.
        """
        unconverted = self._unconverted
        if unconverted is None:
            raise RingUnavailableError(errno.ENOSYS, self.reason or "io_uring is not available")
        return partial(unconverted, ctypes.c_long(_SYSCALLS["enter"]))


#: The system calls every ring uses; replace to simulate a refusing kernel.
syscalls = _SystemCalls()


# ---------------------------------------------------------------- addresses


def _address_of(buffer: Any) -> int:
    """The address of a writable buffer (bytearray, mmap, ctypes array)."""
    return ctypes.addressof(ctypes.c_char.from_buffer(buffer))


def _bytes_address_by_ctypes(data: bytes) -> int:
    address: int = ctypes.c_void_p.from_buffer(ctypes.c_char_p(data)).value or 0
    return address


def _inline_bytes_offset() -> int | None:
    """Where CPython keeps a ``bytes`` object's bytes, from the object's ``id``:
    one addition, against a third of a microsecond through ctypes.  Checked
    against ctypes once; None where it does not hold (another implementation)."""
    offset = sys.getsizeof(b"") - 1
    sample = b"weft io_uring address probe"
    if sys.implementation.name == "cpython" and id(sample) + offset == _bytes_address_by_ctypes(sample):
        return offset
    return None


#: See :func:`_inline_bytes_offset`.
_BYTES_OFFSET = _inline_bytes_offset()


def _pick_bytes_address() -> Callable[[bytes], int]:
    """How to find where a ``bytes`` object keeps its bytes.

    CPython keeps them inline, at a fixed offset from the object (its
    ``id``): that costs one addition, against a third of a microsecond
    through ctypes.  The offset is checked against ctypes here, once; where
    it does not hold (another implementation), ctypes is used.
    """
    offset = _BYTES_OFFSET
    if offset is not None:

        def fast(data: bytes) -> int:
            return id(data) + offset

        return fast
    return _bytes_address_by_ctypes


#: Where CPython keeps a ``bytes`` object's bytes, from its ``id`` (0 elsewhere,
#: where it is not used: see Ring.push_bytes).
_INLINE = _BYTES_OFFSET or 0

#: ``address_of_bytes(data)``: where ``data``'s bytes are.  The caller keeps
#: ``data`` referenced for as long as the kernel may read them.
address_of_bytes = _pick_bytes_address()


def ring_span(head: int, tail: int) -> int:
    """How many entries lie between ``head`` and ``tail``, two free-running
    32-bit counters (the kernel's): correct across their wrap at 2**32."""
    return (tail - head) & _U32


# --------------------------------------------------------------------- ring


class Ring:
    """One io_uring instance: its queues mapped into Python.

    ``entries`` submission slots (rounded up to a power of two by the
    kernel) and ``completions`` completion slots.  Raises
    :class:`RingUnavailableError` when the kernel refuses.

    Where the kernel offers it (Linux 6.1 and later) the ring is
    *single-issuer*: it belongs to the first thread that enters the kernel
    with it (:meth:`submit`, :meth:`submit_and_wait`, :meth:`flush`, or a
    full queue), and only that thread may do so again
    (:class:`RingThreadError` otherwise).  Preparing entries is only memory
    writes, and may happen before, on any thread that owns the ring's use
    at the time.  ``single_issuer=False`` makes a ring any thread may enter
    (one at a time), at the cost of the kernel's locking and of deferred
    completion work.
    """

    def __init__(self, entries: int = 256, completions: int = 4096, *, single_issuer: bool = True) -> None:
        self.fd = -1
        self._closed = False
        params = ctypes.create_string_buffer(_PARAMS.size)
        fields = [0] * 10 + [0] * 9 + [0] * 9
        fields[1] = completions
        error: OSError | None = None
        flags = 0
        for flags in _SETUPS if single_issuer else _ANY_THREAD_SETUPS:
            fields[2] = flags
            _PARAMS.pack_into(params, 0, *fields)
            try:
                self.fd = syscalls.setup(entries, ctypes.addressof(params))
            except RingUnavailableError:
                raise
            except OSError as exc:
                error = exc
                if exc.errno != errno.EINVAL:
                    break
                continue
            error = None
            break
        if error is not None:
            code = error.errno or errno.ENOSYS
            raise RingUnavailableError(code, _explain(code)) from error
        #: The setup flags the kernel took (the first of _SETUPS it knows).
        self.setup_flags = flags
        #: Whether only one thread may enter the kernel with this ring.
        self.single_issuer = bool(flags & _SETUP_SINGLE_ISSUER)
        # A ring made disabled is enabled by the first enter, on the thread
        # that makes it (which then owns the ring); see _claim.
        self._claimed = not flags & _SETUP_R_DISABLED
        self._owner: int | None = None
        try:
            self._map(_PARAMS.unpack_from(params, 0))
            self._raw_enter = syscalls.raw_enter()
        except BaseException:
            os.close(self.fd)
            self.fd = -1
            raise
        # The enter call's extra argument, for a wait with a timeout:
        # io_uring_getevents_arg, pointing at a timespec.
        self._timespec = ctypes.create_string_buffer(_TIMESPEC.size)
        self._getevents = ctypes.create_string_buffer(_GETEVENTS_ARG.size)
        _GETEVENTS_ARG.pack_into(self._getevents, 0, 0, 0, 0, ctypes.addressof(self._timespec))
        self._getevents_arg = ctypes.c_void_p(ctypes.addressof(self._getevents))
        #: How many io_uring_enter calls were made (the syscall benchmark reads it).
        self.enters = 0

    def _map(self, values: tuple[int, ...]) -> None:
        sq_entries, cq_entries, _flags, _cpu, _idle, features = values[:6]
        sq_off, cq_off = values[10:18], values[19:27]
        self.features = features
        if not features & _FEAT_SINGLE_MMAP or not features & _FEAT_EXT_ARG or not features & _FEAT_NODROP:
            raise RingUnavailableError(
                errno.EINVAL, "this kernel's io_uring is too old for weft (Linux 5.19 or later is needed)"
            )
        self.sq_entries = sq_entries
        self.cq_entries = cq_entries
        # The kernel takes every entry handed over (SUBMIT_ALL, and no
        # SQPOLL), so its head is at _submitted after each enter: the queue
        # is full once this many wait, with no read of the shared head.
        self._sq_capacity = sq_entries
        sq_head, sq_tail, sq_mask, _sq_n, sq_flags, _dropped, sq_array = sq_off[:7]
        cq_head, cq_tail, cq_mask, _cq_n, _overflow, cqes = cq_off[:6]
        size = max(sq_array + sq_entries * 4, cqes + cq_entries * _CQE.size)
        self._rings = mmap.mmap(
            self.fd, size, mmap.MAP_SHARED | getattr(mmap, "MAP_POPULATE", 0),
            mmap.PROT_READ | mmap.PROT_WRITE, offset=_OFF_SQ_RING,
        )
        self._sqes = mmap.mmap(
            self.fd, sq_entries * _SQE.size, mmap.MAP_SHARED | getattr(mmap, "MAP_POPULATE", 0),
            mmap.PROT_READ | mmap.PROT_WRITE, offset=_OFF_SQES,
        )
        words = memoryview(self._rings).cast("I")
        self._words = words
        self._sq_mask = words[sq_mask // 4]
        self._cq_mask = words[cq_mask // 4]
        self._sq_head_at = sq_head // 4
        self._sq_tail_at = sq_tail // 4
        self._sq_flags_at = sq_flags // 4
        self._cq_head_at = cq_head // 4
        self._cq_tail_at = cq_tail // 4
        self._cqes = cqes
        # Slot i of the array names entry i, for good: entries are then
        # written straight at tail & mask, with no indirection to update.
        for index in range(sq_entries):
            words[sq_array // 4 + index] = index
        # What was prepared and what was handed over, counted from the
        # kernel's tail at setup as plain (unbounded) Python ints: no wrap to
        # mask on the hot paths; the shared tail gets the low 32 bits.
        self._start_counters(words[self._sq_tail_at], words[self._cq_head_at])

    def _start_counters(self, tail: int, head: int) -> None:
        self._sq_tail = tail
        self._submitted = tail
        self._cq_head = head

    # ------------------------------------------------------------ preparing

    @property
    def pending(self) -> int:
        """Entries prepared and not yet handed to the kernel."""
        return self._sq_tail - self._submitted

    @property
    def submitted(self) -> int:
        """How many entries were handed to the kernel: the entry prepared as
        ``sequence`` has been once ``sequence < submitted``."""
        return self._submitted

    def _prepare(
        self,
        opcode: int,
        fd: int,
        user_data: int,
        *,
        addr: int = 0,
        length: int = 0,
        off: int = 0,
        op_flags: int = 0,
        ioprio: int = 0,
        sqe_flags: int = 0,
        buf_group: int = 0,
    ) -> int:
        if self._closed:
            raise RingUnavailableError(errno.EBADF, "the ring is closed")
        tail = self._sq_tail
        if tail - self._submitted >= self._sq_capacity:
            self.submit()  # full: hand the batch over now, without waiting
            tail = self._sq_tail
        _SQE.pack_into(
            self._sqes, (tail & self._sq_mask) * 64, opcode, sqe_flags, ioprio, fd, off, addr,
            length, op_flags, user_data, buf_group, 0, 0, 0, 0,
        )  # fmt: skip
        self._sq_tail = tail + 1
        return tail

    @staticmethod
    def entry(
        opcode: int, fd: int, user_data: int, *, addr: int = 0, length: int = 0, off: int = 0,
        op_flags: int = 0,
    ) -> bytes:  # fmt: skip
        """A submission entry made once and pushed many times (:meth:`push`,
        :meth:`push_bytes`): a connection's receive into its own buffer is the
        same 64 bytes every time, its send differs only in address and length.
        :data:`Op` names the opcodes; ``SEND`` wants ``MSG_NOSIGNAL`` in
        ``op_flags`` (:meth:`send_entry` and :meth:`recv_entry` make them)."""
        return _SQE.pack(opcode, 0, 0, fd, off, addr, length, op_flags, user_data, 0, 0, 0, 0, 0)

    @classmethod
    def recv_entry(cls, fd: int, address: int, size: int, user_data: int, *, on_socket: bool = True) -> bytes:
        """A ``RECV`` (a ``READ`` at the current position where not ``on_socket``)
        of at most ``size`` bytes into ``address``: for :meth:`push`."""
        if on_socket:
            return cls.entry(Op.RECV, fd, user_data, addr=address, length=size)
        return cls.entry(Op.READ, fd, user_data, addr=address, length=size, off=_CURRENT_POSITION)

    @classmethod
    def send_entry(cls, fd: int, user_data: int, *, on_socket: bool = True) -> bytes:
        """A ``SEND`` (no SIGPIPE; a ``WRITE`` at the current position where not
        ``on_socket``) with its address and length left to :meth:`push_bytes`."""
        if on_socket:
            return cls.entry(Op.SEND, fd, user_data, op_flags=_MSG_NOSIGNAL)
        return cls.entry(Op.WRITE, fd, user_data, off=_CURRENT_POSITION)

    @staticmethod
    def quick_send_entry(fd: int, user_data: int) -> bytes:
        """A *quick* ``SEND`` on the socket ``fd``, for :meth:`push_bytes`: one
        that is over when the ``io_uring_enter`` handing it to the kernel
        returns, and posts a completion only if it did not send every byte.

        It sends what the socket takes at once and never waits for room
        (``MSG_DONTWAIT``, which io_uring makes final: it arms no poll to try
        again); ``MSG_WAITALL`` makes a short send a failure; and a failure
        is the only thing it reports (``IOSQE_CQE_SKIP_SUCCESS``): ``res``
        is then the bytes sent before it stopped (0 to ``len - 1``; the
        kernel reports ``-EAGAIN`` for none), or ``-errno`` if none were
        and something broke.  So when the enter returns, the kernel is done
        with the bytes whether a completion came or not, and the usual case,
        every byte taken, costs no completion at all.

        Only where :func:`quick_sends_work` says this kernel behaves so.
        """
        return _SQE.pack(
            Op.SEND, _IOSQE_CQE_SKIP_SUCCESS, 0, fd, 0, 0, 0, _MSG_NOSIGNAL | _MSG_DONTWAIT | _MSG_WAITALL,
            user_data, 0, 0, 0, 0, 0,
        )  # fmt: skip

    # push and push_bytes run once or twice per message: they test nothing
    # they need not.  A full queue is handed over first (submit refuses on
    # a closed ring); otherwise a closed ring's entry array is an unmapped
    # mmap, whose slice assignment raises ValueError, turned here into the
    # RingUnavailableError that every other call on a closed ring raises.

    def push(self, entry: bytes) -> int:
        """Queue a copy of ``entry`` (64 bytes, from :meth:`entry`); its sequence,
        as the ``prep_*`` methods return it.  The hot paths' way: one copy
        into the shared array in place of packing fourteen fields."""
        tail = self._sq_tail
        if tail - self._submitted >= self._sq_capacity:
            self.submit()
        offset = (tail & self._sq_mask) << 6
        try:
            self._sqes[offset : offset + 64] = entry
        except ValueError as exc:
            raise self._refusal(exc) from None
        self._sq_tail = tail + 1
        return tail

    def _push_bytes_anywhere(self, entry: bytes, data: bytes) -> int:
        """Queue ``entry`` (a :meth:`send_entry` or :meth:`quick_send_entry`)
        pointed at all of ``data``; its sequence.  The caller keeps ``data``
        referenced until the completion (a quick send's: until the enter
        that hands it over returns)."""
        tail = self._sq_tail
        if tail - self._submitted >= self._sq_capacity:
            self.submit()
        offset = (tail & self._sq_mask) << 6
        sqes = self._sqes
        try:
            sqes[offset : offset + 64] = entry
        except ValueError as exc:
            raise self._refusal(exc) from None
        _ADDR_LEN.pack_into(sqes, offset + _ADDR_AT, address_of_bytes(data), len(data))
        self._sq_tail = tail + 1
        return tail

    def _push_bytes_cpython(self, entry: bytes, data: bytes) -> int:
        """Queue ``entry`` (a :meth:`send_entry` or :meth:`quick_send_entry`)
        pointed at all of ``data``; its sequence.  The caller keeps ``data``
        referenced until the completion (a quick send's: until the enter
        that hands it over returns)."""
        # As _push_bytes_anywhere, with where the bytes are found by one
        # addition (see _inline_bytes_offset) rather than a call.
        tail = self._sq_tail
        if tail - self._submitted >= self._sq_capacity:
            self.submit()
        offset = (tail & self._sq_mask) << 6
        sqes = self._sqes
        try:
            sqes[offset : offset + 64] = entry
        except ValueError as exc:
            raise self._refusal(exc) from None
        _ADDR_LEN.pack_into(sqes, offset + _ADDR_AT, id(data) + _INLINE, len(data))
        self._sq_tail = tail + 1
        return tail

    push_bytes = _push_bytes_cpython if _BYTES_OFFSET is not None else _push_bytes_anywhere

    def _refusal(self, exc: Exception) -> Exception:
        if self._closed:
            return RingUnavailableError(errno.EBADF, "the ring is closed")
        return exc

    def withdraw(self, sequence: int) -> bool:
        """Turn the entry prepared as ``sequence`` (what its ``prep_*`` returned)
        into a no-op, if it has not been handed to the kernel yet: its
        completion then comes back with its user_data and ``res`` 0 (none
        for a quick send, which reports only failures), and the kernel never
        touches its buffer.  Whether it was still here to withdraw.
        """
        if not self._submitted <= sequence < self._sq_tail:
            return False
        offset = (sequence & self._sq_mask) * _SQE.size
        sqes = self._sqes
        sqes[offset] = Op.NOP
        # No flags (a link, a buffer selection), but a quick send's silence;
        # and no operation flags, which a NOP would take for its own (a
        # send's MSG_* bits are flags it refuses: EINVAL).
        sqes[offset + 1] &= _IOSQE_CQE_SKIP_SUCCESS
        sqes[offset + _OP_FLAGS_AT : offset + _OP_FLAGS_AT + 4] = b"\0\0\0\0"
        return True

    def prep_nop(self, user_data: int) -> int:
        """A no-op: its completion comes back at once."""
        return self._prepare(Op.NOP, -1, user_data)

    def prep_poll_add(self, fd: int, events: int, user_data: int, *, multishot: bool = False) -> int:
        """Wait for ``events`` (poll(2) bits) on ``fd``; the result is the events seen."""
        return self._prepare(
            Op.POLL_ADD, fd, user_data, op_flags=events, length=IORING_POLL_ADD_MULTI if multishot else 0
        )

    def prep_poll_remove(self, target: int, user_data: int) -> int:
        """Cancel the POLL_ADD whose user_data is ``target``."""
        return self._prepare(Op.POLL_REMOVE, -1, user_data, addr=target)

    def prep_timeout(self, timespec: Any, user_data: int, *, count: int = 0) -> int:
        """Complete (``-ETIME``) after the time in ``timespec`` (a buffer made by
        :func:`timespec`, kept by the caller until the completion), or after
        ``count`` other completions, whichever first."""
        return self._prepare(Op.TIMEOUT, -1, user_data, addr=_address_of(timespec), length=1, off=count)

    def prep_cancel(self, target: int, user_data: int, *, flags: int = 0, fd: int = -1) -> int:
        """Cancel the operation whose user_data is ``target`` (or, with
        :data:`IORING_ASYNC_CANCEL_FD`, those on ``fd``); the result is 0,
        ``-ENOENT`` (nothing to cancel) or ``-EALREADY`` (it is finishing)."""
        return self._prepare(Op.ASYNC_CANCEL, fd, user_data, addr=target, op_flags=flags)

    def prep_accept(self, fd: int, user_data: int, *, multishot: bool = False) -> int:
        """Accept a connection on the listening socket ``fd`` (the result is the
        new fd, non-blocking and close-on-exec); multishot stays armed."""
        flags = socket.SOCK_NONBLOCK | socket.SOCK_CLOEXEC
        return self._prepare(
            Op.ACCEPT, fd, user_data, op_flags=flags, ioprio=IORING_ACCEPT_MULTISHOT if multishot else 0
        )

    def prep_connect(self, fd: int, sockaddr: Any, size: int, user_data: int) -> int:
        """Connect ``fd`` to the address in the buffer ``sockaddr`` (``size`` bytes)."""
        return self._prepare(Op.CONNECT, fd, user_data, addr=_address_of(sockaddr), off=size)

    def prep_recv(self, fd: int, address: int, size: int, user_data: int) -> int:
        """Receive at most ``size`` bytes into memory at ``address``."""
        return self._prepare(Op.RECV, fd, user_data, addr=address, length=size)

    def prep_send(self, fd: int, address: int, size: int, user_data: int) -> int:
        """Send ``size`` bytes from ``address`` (no SIGPIPE: a gone peer is ``-EPIPE``)."""
        return self._prepare(Op.SEND, fd, user_data, addr=address, length=size, op_flags=_MSG_NOSIGNAL)

    def prep_read(self, fd: int, address: int, size: int, user_data: int) -> int:
        """``read(2)`` at most ``size`` bytes into ``address`` (from the current position)."""
        return self._prepare(Op.READ, fd, user_data, addr=address, length=size, off=_CURRENT_POSITION)

    def prep_write(self, fd: int, address: int, size: int, user_data: int) -> int:
        """``write(2)`` ``size`` bytes from ``address`` (at the current position)."""
        return self._prepare(Op.WRITE, fd, user_data, addr=address, length=size, off=_CURRENT_POSITION)

    def prep_shutdown(self, fd: int, how: int, user_data: int) -> int:
        """``shutdown(2)`` the socket ``fd``."""
        return self._prepare(Op.SHUTDOWN, fd, user_data, length=how)

    def prep_close(self, fd: int, user_data: int) -> int:
        """``close(2)`` ``fd``."""
        return self._prepare(Op.CLOSE, fd, user_data)

    # ------------------------------------------------------------- entering

    @property
    def owner(self) -> int | None:
        """The ident of the thread that owns a single-issuer ring (the first
        that entered the kernel with it); None until then, and for a ring
        any thread may enter."""
        return self._owner

    def submit(self) -> int:
        """Hand what is prepared to the kernel without waiting; how much it took."""
        return self._enter(0, 0, None)

    def flush(self) -> int:
        """Hand over what is prepared and let the kernel finish what it can at
        once (a poll removal, a cancel), without waiting for completions."""
        return self._enter(0, _ENTER_GETEVENTS, None)

    def submit_and_wait(self, timeout: float | None) -> int:
        """Hand over what is prepared and wait, at most ``timeout`` seconds (None:
        as long as it takes), for one completion, in one ``io_uring_enter``.

        Returns at once when completions are already there.  An interrupted
        or expired wait is not an error: :meth:`reap` then finds what came.
        """
        if (self._words[self._cq_tail_at] - self._cq_head) & _U32:  # ready()
            return self._enter(0, 0, None) if self._sq_tail != self._submitted else 0
        return self._enter(1, _ENTER_GETEVENTS, timeout)

    def _enter(self, min_complete: int, flags: int, timeout: float | None) -> int:
        if self._closed:
            raise RingUnavailableError(errno.EBADF, "the ring is closed")
        if not self._claimed:
            self._claim()
        to_submit = self._sq_tail - self._submitted
        self._words[self._sq_tail_at] = self._sq_tail & _U32
        if timeout is not None and flags & _ENTER_GETEVENTS:
            whole = int(timeout)
            _TIMESPEC.pack_into(self._timespec, 0, whole, int((timeout - whole) * 1e9))
            arg, size = self._getevents_arg, _GETEVENTS_SIZE
            flags |= _ENTER_EXT_ARG
        else:
            arg, size = _NULL, _NO_SIZE
        self.enters += 1
        taken = self._raw_enter(self.fd, to_submit, min_complete, flags, arg, size)
        if taken < 0:
            code = ctypes.get_errno()
            if code not in _NOT_FAILURES:
                if code == errno.EEXIST and self.single_issuer:
                    raise self._not_the_owner()
                raise OSError(code, os.strerror(code))
            # Expired or interrupted, or the completion queue is full: what
            # was submitted is counted by the kernel's head.
            taken = ring_span(self._submitted & _U32, self._words[self._sq_head_at])
        self._submitted += taken
        return taken

    def _claim(self) -> None:
        """Enable a ring made disabled: the calling thread becomes its owner."""
        try:
            syscalls.register(self.fd, _REGISTER_ENABLE_RINGS, 0, 0)
        except OSError as exc:
            raise RingUnavailableError(
                exc.errno or errno.EINVAL, f"the ring could not be enabled: {exc.strerror or exc}"
            ) from exc
        self._owner = threading.get_ident()
        self._claimed = True

    def check_thread(self) -> None:
        """Raise :class:`RingThreadError` if the calling thread may not enter
        the kernel with this ring (a single-issuer ring another thread owns);
        before anything is done that would need it."""
        owner = self._owner
        if owner is not None and owner != threading.get_ident():
            raise self._not_the_owner()

    def _not_the_owner(self) -> RingThreadError:
        return RingThreadError(
            f"io_uring_enter from thread {threading.get_ident()} refused: this ring belongs to "
            f"thread {self._owner}, the first that entered the kernel with it (a single-issuer "
            "ring); run, turn and close its runtime on that thread, and reach it from others "
            "with call_soon_threadsafe"
        )

    # -------------------------------------------------------------- reaping

    def ready(self) -> int:
        """How many completions wait to be reaped."""
        return ring_span(self._cq_head, self._words[self._cq_tail_at])

    def reap(self) -> list[tuple[int, int, int]]:
        """Every completion waiting: ``(user_data, res, flags)`` each, in order."""
        return list(_CQE.iter_unpack(self.reap_run()))

    def reap_run(self) -> bytes:
        """Every completion waiting, as the run of 16-byte entries it is in the
        queue (``struct io_uring_cqe``: user_data, res, flags; read them with
        :func:`unpack_completions`), in order.  Their slots are the kernel's
        again when this returns."""
        head = self._cq_head
        count = (self._words[self._cq_tail_at] - head) & _U32
        if not count:
            return b""
        # One copy of the run of entries (two where it wraps past the
        # ring's end) and one unpacking pass over it: the slots are then
        # free, and given back to the kernel before any handler runs.
        mask, base, rings = self._cq_mask, self._cqes, self._rings
        start = head & mask
        end = start + count
        if end <= mask + 1:
            run = rings[base + start * 16 : base + end * 16]
        else:
            wrapped = end - mask - 1
            run = rings[base + start * 16 : base + (mask + 1) * 16] + rings[base : base + wrapped * 16]
        self._cq_head = (head + count) & _U32
        self._words[self._cq_head_at] = self._cq_head
        return run

    # -------------------------------------------------------------- closing

    @property
    def closed(self) -> bool:
        """Whether :meth:`close` was called."""
        return self._closed

    def close(self) -> None:
        """Unmap the queues and close the ring.

        The kernel cancels whatever is still in flight; the caller must have
        waited for every completion first if it owns memory the kernel could
        still write (the driver does).
        """
        if self._closed:
            return
        self._closed = True
        self._words.release()
        self._rings.close()
        self._sqes.close()
        os.close(self.fd)


class _OnCore:
    """An :class:`AcceleratedRing` counter kept on its ``RingCore``: read and
    written through, as the plain attribute it is on a :class:`Ring`."""

    def __init__(self, field: str) -> None:
        self._field = field

    @overload
    def __get__(self, ring: None, owner: type[Any]) -> _OnCore: ...
    @overload
    def __get__(self, ring: AcceleratedRing, owner: type[Any]) -> int: ...
    def __get__(self, ring: AcceleratedRing | None, owner: type[Any]) -> _OnCore | int:
        if ring is None:
            return self
        value: int = getattr(ring._core, self._field)
        return value

    def __set__(self, ring: AcceleratedRing, value: int) -> None:
        setattr(ring._core, self._field, value)


class AcceleratedRing(Ring):
    """A :class:`Ring` whose hot calls are weft's C accelerator's
    (``weft._speedups.RingCore``, over the same mapped queues): the counters
    of what was prepared, handed over and reaped live in C, so that the
    completion driver's loop in C (``weft._speedups.RingTurn``) and the
    Python methods here agree on them; :meth:`push` and :meth:`push_bytes`
    are the C object's own, and the enter is a system call made from C,
    with the GIL released only when it may wait.  Everything else (the cold
    ``prep_*`` calls, :meth:`withdraw`, :meth:`reap`) is :class:`Ring`'s,
    reading the counters through properties.

    Made by :func:`new_ring` where the accelerator is in use.
    """

    _core: Any

    def _start_counters(self, tail: int, head: int) -> None:
        # The addresses are taken through a buffer export released at once:
        # the mappings stay open until close(), which first tells the core
        # to forget them.
        core_type = accelerator.ring_core_type()
        if core_type is None:
            raise RingUnavailableError(errno.ENOSYS, "weft's C accelerator is not in use")
        self._core = core_type(
            fd=self.fd, rings=_address_of(self._rings), sqes=_address_of(self._sqes),
            sq_head=self._sq_head_at * 4, sq_tail=self._sq_tail_at * 4, cq_head=self._cq_head_at * 4,
            cq_tail=self._cq_tail_at * 4, cqes=self._cqes, sq_mask=self._sq_mask, cq_mask=self._cq_mask,
            capacity=self._sq_capacity, tail=tail, head=head, submit=self.submit,
            unavailable=RingUnavailableError,
        )  # fmt: skip
        # The hot calls, straight to C (no Python frame between).
        self.push = self._core.push  # type: ignore[method-assign]
        self.push_bytes = self._core.push_bytes  # type: ignore[method-assign]

    @property
    def core(self) -> Any:
        """The ``weft._speedups.RingCore`` (for the completion driver's loop)."""
        return self._core

    # The counters live on the RingCore, where the C loop reads and writes them.
    _sq_tail = _OnCore("sq_tail")
    _submitted = _OnCore("submitted")
    _cq_head = _OnCore("cq_head")
    #: How many io_uring_enter calls were made.
    enters = _OnCore("enters")

    def _enter(self, min_complete: int, flags: int, timeout: float | None) -> int:
        if self._closed:
            raise RingUnavailableError(errno.EBADF, "the ring is closed")
        if not self._claimed:
            self._claim()
        try:
            taken: int = self._core.enter(min_complete, flags, -1.0 if timeout is None else timeout)
        except OSError as exc:
            if exc.errno == errno.EEXIST and self.single_issuer:
                raise self._not_the_owner() from None
            raise
        return taken

    def close(self) -> None:
        """As :meth:`Ring.close`; the C side forgets the mappings first."""
        if not self._closed:
            self._core.close()
        super().close()


def new_ring(entries: int = 256, completions: int = 4096) -> Ring:
    """A ring for the completion driver: an :class:`AcceleratedRing` where
    weft's C accelerator is in use (drivers/_core/accelerator.py), else a
    :class:`Ring`."""
    if accelerator.ring_core_type() is not None:
        return AcceleratedRing(entries, completions)
    return Ring(entries, completions)


#: ``unpack_completions(run)``: ``(user_data, res, flags)`` for each entry of
#: a run from :meth:`Ring.reap_run`.
unpack_completions = _CQE.iter_unpack

#: A quick send's bytes in the probe (quick_sends_work): never let go, since
#: a kernel that misbehaved could still be reading them.
_PROBE_BYTES = bytes(1 << 20)


@functools.cache
def quick_sends_work() -> bool:
    """Whether this kernel treats a quick send (:meth:`Ring.quick_send_entry`)
    as weft relies on: over when the enter that hands it over returns, a
    completion only when not every byte went, and then the true count.

    Asked once per process, of the kernel itself, on a UNIX socket pair made
    to fill up: a small send goes whole and silently; a 1 MiB one is cut
    short and reports exactly what the peer can read; one more, with no room
    left, reports ``-EAGAIN`` and sends nothing.  False on any other outcome
    (then the driver uses only sends that report their completion).
    """
    try:
        ring = Ring(4, 8)
    except RingUnavailableError:
        return False
    left, right = socket.socketpair()
    try:
        left.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
        right.setblocking(False)
        entry = Ring.quick_send_entry(left.fileno(), 1)
        results: list[list[tuple[int, int, int]]] = []
        for data in (_PROBE_BYTES[:100], _PROBE_BYTES, _PROBE_BYTES[:100]):
            ring.push_bytes(entry, data)
            ring.submit()
            results.append(ring.reap())
        received = 0
        with contextlib.suppress(BlockingIOError):
            while chunk := right.recv(1 << 20):
                received += len(chunk)
        small, big, full = results
        return (
            small == []
            and len(big) == 1
            and 0 < big[0][1] < len(_PROBE_BYTES)
            and full == [(1, -errno.EAGAIN, 0)]
            and received == 100 + big[0][1]
        )
    except OSError:
        return False
    finally:
        left.close()
        right.close()
        ring.close()


def timespec(seconds: float) -> ctypes.Array[ctypes.c_char]:
    """A ``__kernel_timespec`` for :meth:`Ring.prep_timeout`."""
    buffer = ctypes.create_string_buffer(_TIMESPEC.size)
    whole = int(seconds)
    _TIMESPEC.pack_into(buffer, 0, whole, int((seconds - whole) * 1e9))
    return buffer


def writable_address(buffer: Any) -> int:
    """The address of a writable buffer (a bytearray, a ctypes array); the
    buffer cannot be resized while the address is in use."""
    return _address_of(buffer)
