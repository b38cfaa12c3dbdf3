"""The ring as the reactor's poller: readiness and completions from one ``io_uring_enter``.

The completion driver is the reactor (:class:`~weft.drivers.reactor.Reactor`)
with this poller in place of epoll.  It serves two kinds of user:

* What the reactor watches for readiness (its wake-up eventfd, so timers,
  ``call_soon_threadsafe`` and signals; listeners; connects in progress;
  child processes' pidfds; datagram endpoints; anything given to
  ``add_reader``): each watched fd has a ``POLL_ADD`` on the ring, and
  :meth:`RingPoller.poll` returns ``(fd, mask)`` pairs as epoll's would.
* Operations (a transport's receive and send, a listener's accept): each
  has a ``user_data`` and a handler in :attr:`RingPoller.completions`, called
  with ``(res, flags)`` from inside :meth:`~RingPoller.poll` when its
  completion is reaped.

Every entry prepared during a turn waits in the submission queue, and the
next :meth:`~RingPoller.poll` hands them all over and waits for completions
in a single ``io_uring_enter``: one system call per turn of the loop, however
many connections sent or received in it.

Readiness is level-triggered, as the reactor's callers expect (an acceptor
takes at most 64 connections per event, a datagram endpoint a batch): each
poll is one-shot and armed again at the start of the next turn, after its
callback ran, so a descriptor still ready is reported again.  (A multishot
poll is edge-triggered: a reader that left data behind would never hear of
it again.)
"""

from __future__ import annotations

import errno
import logging
import os
from collections.abc import Callable
from typing import Any

from weft.drivers._core import accelerator
from weft.drivers._core.socket_defaults import READ_SIZE
from weft.drivers.completion._uring import Ring, new_ring, quick_sends_work, unpack_completions
from weft.drivers.reactor._pollers import ERROR, HANGUP
from weft.protocols.errors import ClosedResourceError

__all__ = ["Handler", "RingPoller"]

logger = logging.getLogger("weft.drivers.completion")

#: What an operation's owner is called with: ``(res, flags)`` of its completion.
Handler = Callable[[int, int], object]

#: The user_data of entries whose completion nobody waits for (cancels, poll removals).
IGNORED = 0

#: Set in the user_data of a transport's quick send (see RingPoller.poll):
#: bit 62, so the top byte of that user_data, and of no other, is 0x40.
QUICK = 1 << 62
_QUICK_TOP_BYTE = QUICK >> 56

#: Everything the kernel may still own at close: handlers of operations that
#: never completed in time, with the buffers they reference.  Kept for the
#: life of the process rather than freed under the kernel.
_abandoned: list[object] = []


class RingPoller:
    """A :class:`~weft.drivers.reactor._pollers.Poller` over an io_uring, and
    the dispatcher of its operations' completions (see the module docstring)."""

    name = "io_uring"

    def __init__(self, ring: Ring | None = None) -> None:
        #: The ring; raises RingUnavailableError when the kernel refuses one.
        self.ring = ring if ring is not None else new_ring(256, 4096)
        self.changes = 0
        #: Each operation's handler, by user_data; the owner adds and removes its own.
        self.completions: dict[int, Handler] = {}
        #: The byte-stream transports (CompletionTransport, which imports
        #: this module: not named here), by the user_data of their receive
        #: and of their send: their completions' common cases are handled in
        #: :meth:`poll` itself (see there); the transport adds and removes itself.
        self.streams: dict[int, Any] = {}
        #: Whether transports on sockets may send quickly (see poll).
        self.quick_sends_work = quick_sends_work()
        #: The transports whose quick send was pushed since the last enter;
        #: each appends itself (one send in flight each, so at most once).
        self.quick_sends: list[Any] = []
        self._next_id = 1
        self._watched: dict[int, int] = {}  # fd -> mask
        self._armed: dict[int, int] = {}  # fd -> user_data of its POLL_ADD
        self._polls: dict[int, int] = {}  # user_data of a POLL_ADD -> fd
        self._to_arm: set[int] = set()
        #: The C accelerator's turn (weft/_speedups.c, RingTurn), where it
        #: is in use and the ring is an AcceleratedRing; None otherwise.
        self._turn = accelerator.ring_turn(
            self, getattr(self.ring, "core", None), self.streams, self.quick_sends, READ_SIZE
        )
        #: Whether transports receive straight into the bytes they deliver
        #: (the C turn's way, see CompletionTransport._arm_recv) rather than
        #: into a buffer of their own that each delivery copies out of.
        self.receives_into_bytes = self._turn is not None
        if self._turn is not None:
            self.poll = self._poll_in_c  # type: ignore[method-assign]

    def new_ids(self, count: int) -> int:
        """Reserve ``count`` consecutive user_data values; the first of them."""
        first = self._next_id
        self._next_id += count
        return first

    # ------------------------------------------------------------- Poller

    def register(self, fd: int, mask: int) -> None:
        """Watch ``fd`` for ``mask``; ClosedResourceError if it is not open."""
        try:
            os.fstat(fd)
        except OSError as exc:
            error = ClosedResourceError(f"file descriptor {fd} is not open")
            raise error from exc
        self.changes += 1
        self._watched[fd] = mask
        self._to_arm.add(fd)

    def modify(self, fd: int, mask: int) -> None:
        """Watch ``fd`` for ``mask`` instead (the armed poll is replaced)."""
        self.changes += 1
        self._watched[fd] = mask
        self._disarm(fd)
        self._to_arm.add(fd)

    def unregister(self, fd: int) -> None:
        """Stop watching ``fd``, at once.

        The poll's removal is handed to the kernel now, not at the next
        turn: the caller may close ``fd`` next, and an armed poll holds the
        file open (a listening socket would stay bound, a peer would not see
        the close).
        """
        self.changes += 1
        if self._watched.pop(fd, None) is None:
            return
        self._to_arm.discard(fd)
        if self._disarm(fd) and not self.ring.closed:
            self.ring.flush()

    def _disarm(self, fd: int) -> bool:
        user_data = self._armed.pop(fd, None)
        if user_data is None:
            return False
        del self._polls[user_data]
        self.ring.prep_poll_remove(user_data, IGNORED)
        return True

    def poll(self, timeout: float) -> list[tuple[int, int]]:
        """Arm what needs it, submit every queued entry and wait up to
        ``timeout`` seconds (forever if negative) in one ``io_uring_enter``;
        finish the quick sends it handed over; run the handlers of the
        operations that completed; return the readiness events, ``(fd,
        mask)`` pairs.

        A transport's quick send (:meth:`~weft.drivers.completion._uring.Ring.quick_send_entry`)
        is over when the enter that handed it over returns, and reports only
        a failure (some bytes not sent).  So after the enter, the failures
        among the run of completions are handed to their transports first
        (they send the rest the usual way), then every other quick send of
        the enter is finished here, as a send's completion would have been:
        before any completion runs a protocol, so a protocol that answers a
        message finds its transport idle and sends at once.  Such a send's
        end makes no completion to wake the wait: when it has work to do (a
        queue to send behind it, ``resume_writing``, a close to finish), the
        enter does not wait.
        """
        ring = self.ring
        if self._to_arm:
            self._arm_all()
        quick = self.quick_sends
        sent: list[Any] | None = None
        ending: list[Any] | None = None
        if quick:
            # Sort the quick sends about to be handed over: those whose end
            # has work to do make this enter not wait; the others will simply
            # be idle again.  Nothing runs between here and their end but the
            # enter itself.
            sent, ending = [], []
            for stream in quick:
                if (
                    stream._buffer
                    or stream._file_queue
                    or stream._flow.paused
                    or not stream._lifecycle.writable
                ):
                    ending.append(stream)
                else:
                    sent.append(stream)
            quick.clear()
            if ending:
                timeout = 0.0
        ring.submit_and_wait(None if timeout < 0 else timeout)
        run = ring.reap_run()
        if sent is not None and ending is not None:
            self._end_quick_sends(run, sent, ending)
        if not run:
            return []
        events: list[tuple[int, int]] = []
        self._dispatch(run, events)
        return events

    def _poll_in_c(self, timeout: float) -> list[tuple[int, int]]:
        """:meth:`poll` with its work after the arming done in C
        (``weft._speedups.RingTurn``): the same steps, the common cases of
        :meth:`_dispatch` and :meth:`_end_quick_sends` inlined there, and
        every other case handed to the same Python methods
        (:meth:`_cold_completion`, the transports' ``_recv_done``,
        ``_send_done`` and ``_quick_failed``, :meth:`_requeue_unsubmitted`)."""
        if self._to_arm:
            self._arm_all()
        ring = self.ring
        if not ring._claimed and not ring.closed:
            ring._claim()  # (a closed ring: the turn raises RingUnavailableError)
        try:
            return self._turn(timeout)  # type: ignore[misc]
        except OSError as exc:
            # Only the enter raises OSError (every handler's exception is
            # logged): the kernel's refusal of another thread's enter.
            if exc.errno == errno.EEXIST and ring.single_issuer:
                raise ring._not_the_owner() from None
            raise

    def _cold_completion(self, user_data: int, res: int, flags: int, events: list[tuple[int, int]]) -> None:
        """A completion that is no transport's: an operation's handler, a
        poll's readiness (appended to ``events``), or nothing."""
        handler = self.completions.get(user_data)
        if handler is not None:
            try:
                handler(res, flags)
            except Exception as exc:  # a driver bug: never stop the loop for it
                logger.error("exception in the completion handler %r", handler, exc_info=exc)
            return
        fd = self._polls.pop(user_data, None)
        if fd is None:
            return  # a removed poll, a cancel, a quick send's failure (done)
        del self._armed[fd]
        self._to_arm.add(fd)
        if res < 0:
            if res == -errno.ECANCELED:
                return
            # The kernel could not poll it (EBADF...): as epoll reports a
            # broken descriptor, so that its reader meets the error.
            res = ERROR | HANGUP
        events.append((fd, res))

    @staticmethod
    def _driver_failed(what: object, exc: BaseException) -> None:
        """An exception from the driver's own code on the C path: logged, as
        the Python loop logs its own (a driver bug never stops the loop)."""
        logger.error("exception in the completion handler of %r", what, exc_info=exc)

    def _dispatch(self, run: bytes, events: list[tuple[int, int]]) -> None:
        """Hand each completion of ``run`` to what waits for it (see poll)."""
        streams, push, cold = self.streams, self.ring.push, self._cold_completion
        for user_data, res, flags in unpack_completions(run):
            stream = streams.get(user_data)
            if stream is None:
                cold(user_data, res, flags, events)
                continue
            # A transport's receive or send.  The common cases are done
            # right here: CompletionTransport._recv_done's and _send_done's
            # hot paths, inlined (as the reactor's loop inlines its reads:
            # a Python call is a good part of what a message costs);
            # anything else goes to the transport.
            try:
                if user_data != stream._recv_id:
                    data = stream._in_flight
                    if (
                        data
                        and res == len(data)
                        and stream._lifecycle.writable
                        and not stream._flow.paused
                        and not stream._buffer
                        and not stream._file_queue
                    ):
                        # All taken, nothing queued behind it, still open, no
                        # resume_writing due: the transport is idle again.
                        stream._in_flight = None
                        stream._buffer_size -= res
                        stream._idle_writer = True
                    else:
                        stream._send_done(res, flags)
                    continue
                lifecycle = stream._lifecycle
                if res > 0 and lifecycle.wants_data and not stream._held:
                    stream._recv_pending = False
                    try:
                        stream._protocol.data_received(stream._recv_view[:res].tobytes())
                    except Exception as exc:
                        stream._callback_failed(exc)
                        continue
                    if lifecycle.wants_data and not stream._recv_pending:
                        if res == stream._recv_grow_at:  # filled: a bigger buffer
                            stream._new_recv_buffer(READ_SIZE)
                        stream._recv_pending = True
                        stream._recv_seq = push(stream._recv_entry)
                else:
                    stream._recv_done(res, flags)
            except Exception as exc:  # a driver bug: never stop the loop for it
                logger.error("exception in the completion handler of %r", stream, exc_info=exc)

    def _end_quick_sends(self, run: bytes, sent: list[Any], ending: list[Any]) -> None:
        """After the enter that handed them over: the quick sends' failures
        first (see poll), then the end of every other, as its completion
        would have been handled."""
        streams, ring = self.streams, self.ring
        if _QUICK_TOP_BYTE in run[7::16]:  # a quick send did not go whole
            for user_data, res, _flags in unpack_completions(run):
                if user_data & QUICK:
                    stream = streams.get(user_data ^ QUICK)
                    if stream is not None and stream._quick:
                        self._quick_failed(stream, res)
        if ring.pending:
            self._requeue_unsubmitted(sent, ending)
        for stream in sent:
            if stream._quick:  # (not if it failed: the rest went the usual way)
                # Sent, nothing queued behind it, still open, no
                # resume_writing due: idle again (_send_done's hot path).
                stream._quick = False
                stream._buffer_size -= len(stream._in_flight)
                stream._in_flight = None
                stream._idle_writer = True
        for stream in ending:
            if stream._quick:
                stream._quick = False
                try:
                    stream._send_done(len(stream._in_flight), 0)
                except Exception as exc:  # a driver bug: never stop the loop for it
                    logger.error("exception finishing the quick send of %r", stream, exc_info=exc)

    def _requeue_unsubmitted(self, sent: list[Any], ending: list[Any]) -> None:
        """The kernel took fewer entries than it was given (it can, short of
        memory): the quick sends it did not take are not over; they move
        back to :attr:`quick_sends`, for the next enter."""
        submitted = self.ring.submitted
        for group in (sent, ending):
            for stream in [s for s in group if s._quick and s._send_seq >= submitted]:
                group.remove(stream)
                self.quick_sends.append(stream)

    @staticmethod
    def _quick_failed(stream: Any, res: int) -> None:
        try:
            stream._quick_failed(res)
        except Exception as exc:  # a driver bug: never stop the loop for it
            logger.error("exception in the quick send failure of %r", stream, exc_info=exc)

    def _arm_all(self) -> None:
        ring, watched, armed, polls = self.ring, self._watched, self._armed, self._polls
        for fd in self._to_arm:
            mask = watched.get(fd)
            if mask is None or fd in armed:
                continue
            user_data = self._next_id
            self._next_id += 1
            armed[fd] = user_data
            polls[user_data] = fd
            ring.prep_poll_add(fd, mask, user_data)
        self._to_arm.clear()

    def in_flight(self) -> int:
        """How many operations still have a handler waiting (not polls)."""
        return len(self.completions) + len(self.streams)

    def close(self) -> None:
        """Close the ring.  Handlers still waiting (operations that never
        completed) are kept for the life of the process, with their buffers,
        so that the kernel can never write into freed memory."""
        if self.completions:
            _abandoned.extend(self.completions.values())
            self.completions.clear()
        if self.streams:
            _abandoned.extend(self.streams.values())
            self.streams.clear()
        self.quick_sends.clear()
        self.ring.close()
