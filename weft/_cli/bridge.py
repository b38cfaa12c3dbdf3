"""Standard input and output bridged to a connection: what ``weft connect`` runs.

Bytes read from stdin go to the connection, bytes from the connection go to
stdout, each way with flow control: when one side's write buffer goes over
its high-water mark, reading from the other side pauses until it drains, so
a slow reader at either end never makes the bridge buffer without bound.

The ends, as ``nc`` users expect them:

* stdin's EOF half-closes the connection (once what was read is sent), and
  the replies keep coming;
* the connection's EOF ends the session: what it sent is flushed to stdout,
  and the bridge stops reading stdin and closes;
* an error ends the session and is raised by :meth:`StdioBridge.run`, with
  where it happened in the message: after a reset, what was already read
  from the connection is still flushed to stdout;
* a broken stdout (its reader, ``head`` say, has gone) aborts the
  connection and is no error: :attr:`StdioBridge.stdout_broken` says so,
  and the command exits as a program killed by SIGPIPE would;
* with an idle timeout, a session with no bytes either way for that long
  ends with ``TimeoutError``.

With ``crlf`` (``connect --crlf``, as ``ncat -C``) every LF read from stdin
that is not already preceded by a CR is sent as CRLF, for line protocols
that insist on it (SMTP, HTTP/1.1 by hand).
"""

from __future__ import annotations

import errno
import re
from typing import Any

from weft.drivers._core.futures import Future
from weft.drivers._core.stdio import STDIN, STDOUT, blocking_modes_restored
from weft.drivers._runtime import Runtime
from weft.drivers._serving import in_context
from weft.protocols.contract import TimerHandle, Transport
from weft.protocols.errors import ArgumentError

__all__ = ["StdioBridge"]


class _Side:
    """The protocol on one side of the bridge: what it reads, the other side writes."""

    def __init__(self, bridge: StdioBridge, name: str) -> None:
        self.bridge = bridge
        self.name = name
        self.other: _Side = self
        self.transport: Transport | None = None
        self.lost = False

    def connection_made(self, transport: Transport) -> None:
        self.transport = transport
        if self is self.bridge._network:
            self.bridge.network_made(transport)
        if self.other.transport is None:
            # Nowhere to put what it reads until the other side is up (a
            # driver may make the pipes' connection on a later turn).
            transport.pause_reading()
        else:
            self.other.transport.resume_reading()
            self.bridge.both_up()

    def data_received(self, data: bytes) -> None:
        self.bridge.active()
        other = self.other.transport
        if other is None:  # cannot happen: reading starts once both are up
            raise RuntimeError("data before the other side of the bridge is up")
        other.write(data)

    def eof_received(self) -> bool:
        self.bridge.eof_from(self)
        return True  # the bridge decides when each side closes

    def pause_writing(self) -> None:
        # This side's peer is not keeping up: stop reading what would go to it.
        if self.other.transport is not None:
            self.other.transport.pause_reading()

    def resume_writing(self) -> None:
        if self.other.transport is not None:
            self.other.transport.resume_reading()

    def connection_lost(self, exc: BaseException | None) -> None:
        self.lost = True
        self.bridge.side_lost(self, exc)


_LONE_LF = re.compile(rb"(?<!\r)\n")


class _CRLFSide(_Side):
    """The stdin side of ``--crlf``: a lone LF goes out as CRLF."""

    def __init__(self, bridge: StdioBridge, name: str) -> None:
        super().__init__(bridge, name)
        self._last_was_cr = False  # a CR ending one read, its LF starting the next

    def data_received(self, data: bytes) -> None:
        converted = _LONE_LF.sub(b"\r\n", data)
        if self._last_was_cr and data[:1] == b"\n":
            converted = converted[1:]  # that LF had its CR, at the end of the last read
        self._last_was_cr = data[-1:] == b"\r"
        super().data_received(converted)


class StdioBridge:
    """Bridges two file descriptors (stdin and stdout by default) to one connection.

    Make one, connect with :meth:`network_protocol` as the protocol factory,
    and :meth:`run` with the connect's future::

        bridge = StdioBridge(runtime, "127.0.0.1:8000")
        bridge.run(runtime.connect_tcp(bridge.network_protocol, "127.0.0.1", 8000))
    """

    def __init__(
        self,
        runtime: Runtime,
        target: str,
        *,
        idle_timeout: float | None = None,
        read_fd: int = STDIN,
        write_fd: int = STDOUT,
        crlf: bool = False,
    ) -> None:
        if idle_timeout is not None and not idle_timeout > 0:
            raise ArgumentError(f"idle_timeout must be > 0 seconds, not {idle_timeout!r}")
        self.runtime = runtime
        #: What the connection goes to, for messages ("127.0.0.1:8000", a path).
        self.target = target
        self.idle_timeout = idle_timeout
        self.read_fd = read_fd
        self.write_fd = write_fd
        self._network = _Side(self, "network")
        self._stdio = _CRLFSide(self, "stdio") if crlf else _Side(self, "stdio")
        # The first connection accepted, in listen mode (see accept_one).
        self._accepting: Future[Transport] | None = None
        self._network.other, self._stdio.other = self._stdio, self._network
        self._connect_settled = False
        # Inside run(): only then is the runtime the bridge's to stop (a
        # connect that completes after an interrupt is aborted later, from
        # whoever runs the runtime next, which must not be stopped by it).
        self._running = False
        self._last_activity = runtime.now()
        self._idle_timer: TimerHandle | None = None
        #: What ended the session, if it did not end cleanly.
        self.error: BaseException | None = None
        #: The signal number :meth:`interrupt` was called with, if it was.
        self.interrupted: int | None = None
        #: Whether the session ended because stdout's reader went away (EPIPE).
        self.stdout_broken = False

    # ---------------------------------------------------------------- API

    def network_protocol(self) -> Any:
        """The protocol factory to connect with (it makes the one network side)."""
        return self._network

    def accept_one(self) -> tuple[Any, Future[Transport]]:
        """For listen mode (``connect --listen``, as ``ncat -l``): a protocol
        factory for a listener, and the future of the first connection.

        The first connection accepted gets the network side; any other that
        races in before the listener is closed is closed at once.
        """
        accepted: Future[Transport] = Future(self.runtime.call_soon)
        self._accepting = accepted

        def factory() -> Any:
            if self._network.transport is None and not accepted.done():
                return self._network
            return _Refused()

        return factory, accepted

    def network_made(self, transport: Transport) -> None:
        """The network side is connected (in listen mode: the first connection is in)."""
        accepting = self._accepting
        if accepting is not None and not accepting.done():
            accepting.set_result(transport)

    @property
    def network_transport(self) -> Transport | None:
        """The connection's transport, once connected."""
        return self._network.transport

    @property
    def stdio_transport(self) -> Transport | None:
        """The transport over the two file descriptors, once connected."""
        return self._stdio.transport

    def run(self, connecting: Future[Transport]) -> None:
        """Run the runtime until the session ends; raise what ended it, if not a clean end.

        The file descriptors' blocking modes are restored whatever happens.
        An interrupted session (:meth:`interrupt`) returns normally.
        """
        connecting.add_done_callback(self._connected)
        with blocking_modes_restored(self.read_fd, self.write_fd):
            self._running = True
            try:
                self.runtime.run()
            finally:
                self._running = False
                self._abort_both()
        if self.error is not None and self.interrupted is None and not self.stdout_broken:
            raise self.error

    def interrupt(self, signum: int) -> None:
        """End the session now (a signal arrived): abort both sides."""
        self.interrupted = signum
        # A connect still under way is given up: nobody waits for it now.
        self._connect_settled = True
        self._abort_both()
        self._stop_if_done()

    # ------------------------------------------------- called by the sides

    def active(self) -> None:
        """Bytes moved: the session is not idle."""
        self._last_activity = self.runtime.now()

    def both_up(self) -> None:
        """Both sides are connected: bytes may flow, and the idle clock starts."""
        self._last_activity = self.runtime.now()
        if self.idle_timeout is not None:
            self._idle_timer = self.runtime.call_later(self.idle_timeout, self._check_idle)

    def eof_from(self, side: _Side) -> None:
        """One side will send nothing more."""
        network = self._network.transport
        if side is self._stdio:
            # stdin is done: half-close, and keep reading the replies.
            if network is not None and not network.is_closing():
                if network.can_write_eof():
                    network.write_eof()
                else:
                    network.close()
            return
        # The connection is done: flush what it sent to stdout, then end.
        for transport in (self._stdio.transport, network):
            if transport is not None:
                transport.close()

    def side_lost(self, side: _Side, exc: BaseException | None) -> None:
        """One side's connection_lost: end the other side too."""
        other = side.other.transport
        if side is self._stdio and isinstance(exc, BrokenPipeError):
            # stdout's reader has gone (``| head -1``): no error, the session is over.
            self.stdout_broken = True
            if other is not None:
                other.abort()
            self._stop_if_done()
            return
        if exc is not None and self.error is None:
            where = f"connection to {self.target}" if side is self._network else "standard input/output"
            self.error = in_context(exc, where) if isinstance(exc, OSError) else exc
            if other is not None and side is self._stdio:
                other.abort()  # nowhere for the replies to go
                other = None
        if other is not None:
            # Flushes what is still queued for it: what was read before a
            # reset still reaches stdout, as with nc.
            other.close()
        self._stop_if_done()

    # ---------------------------------------------------------- internals

    def _connected(self, connecting: Future[Transport]) -> None:
        if self.interrupted is not None:
            self._abort_both()
            return
        self._connect_settled = True
        exc = connecting.exception()
        if exc is not None:
            listening = self._accepting is not None  # its errors say what they are
            if (
                isinstance(exc, OSError)
                and not listening
                and not str(exc.strerror).startswith("cannot connect")
            ):
                exc = in_context(exc, f"cannot connect to {self.target}")  # a name that did not resolve
            self.error = exc
            self._stop_if_done()
            return
        try:
            self.runtime.connect_pipes(lambda: self._stdio, self.read_fd, self.write_fd, close_fds=False)
        except Exception as exc:  # stdin that cannot be polled, say
            self.error = in_context(exc, "standard input/output") if isinstance(exc, OSError) else exc
            self._abort_both()
            self._stop_if_done()
            return

    def _check_idle(self) -> None:
        timeout = self.idle_timeout
        if timeout is None:
            return
        idle = self.runtime.now() - self._last_activity
        if idle < timeout:
            self._idle_timer = self.runtime.call_later(timeout - idle, self._check_idle)
            return
        self._idle_timer = None
        if self.error is None:
            self.error = TimeoutError(
                errno.ETIMEDOUT, f"connection to {self.target}: nothing sent either way for {timeout:g} s"
            )
        self._abort_both()

    def _abort_both(self) -> None:
        for side in (self._network, self._stdio):
            if side.transport is not None and not side.lost:
                side.transport.abort()

    def _stop_if_done(self) -> None:
        sides = [side for side in (self._network, self._stdio) if side.transport is not None]
        if self._connect_settled and all(side.lost for side in sides):
            if self._idle_timer is not None:
                self._idle_timer.cancel()
                self._idle_timer = None
            if self._running:
                self.runtime.stop()


class _Refused:
    """A connection that raced in after the one listen mode accepts: closed at once."""

    def connection_made(self, transport: Transport) -> None:
        transport.close()

    def data_received(self, data: bytes) -> None:
        pass

    def eof_received(self) -> bool:
        return False

    def connection_lost(self, exc: BaseException | None) -> None:
        pass
