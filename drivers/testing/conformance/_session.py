"""One check's use of a harness: the connections it makes, waits with clear
failures, and the ending of everything it connected.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from types import TracebackType
from typing import Any

from weft.drivers.testing._recording import RecordingProtocol
from weft.drivers.testing.conformance._expectations import CheckFailure, expect
from weft.drivers.testing.conformance._harness import ConnectedPair, TransportHarness

__all__ = ["TIMEOUT", "Connection", "FlowRecorder", "Session"]

#: How long, in the loop's seconds, a check waits for what it expects.
TIMEOUT = 10.0

#: How long a check lets the loop run to see that something does *not* happen.
A_WHILE = 0.05


class FlowRecorder(RecordingProtocol):
    """Records every call, and the write buffer size at each flow-control call."""

    def __init__(self, *, keep_open_on_eof: bool = False) -> None:
        super().__init__(keep_open_on_eof=keep_open_on_eof)
        self.buffer_at_pause: list[int] = []
        self.buffer_at_resume: list[int] = []

    def pause_writing(self) -> None:
        """Record it, with the buffer size."""
        self.buffer_at_pause.append(self.transport.get_write_buffer_size())
        super().pause_writing()

    def resume_writing(self) -> None:
        """Record it, with the buffer size."""
        self.buffer_at_resume.append(self.transport.get_write_buffer_size())
        super().resume_writing()


class Connection:
    """A connected pair with the check's protocols at its ends."""

    def __init__(self, pair: ConnectedPair, client: FlowRecorder, server: FlowRecorder) -> None:
        self.pair = pair
        self.client = client
        self.server = server

    @property
    def callback_errors(self) -> Sequence[BaseException]:
        """The exceptions from protocol callbacks the driver reported."""
        return self.pair.callback_errors

    def wait(self, condition: Callable[[], bool], what: str, *, timeout: float = TIMEOUT) -> None:
        """Run until ``condition()`` holds; fail saying ``what`` never happened."""
        if not self.pair.run_until(condition, timeout):
            raise CheckFailure(f"{what}: still not so after {timeout:g} s")

    def run_a_while(self, seconds: float = A_WHILE) -> None:
        """Let the loop run ``seconds`` (less on a fake clock with nothing left to do)."""
        self.pair.run_until(_never, seconds)

    def protocols(self) -> list[RecordingProtocol]:
        """The protocols now at both ends (after ``set_protocol``, the new ones)."""
        found = []
        for protocol in (self.client, self.server):
            transport = getattr(protocol, "transport", None)
            current = transport.get_protocol() if transport is not None else protocol
            found.append(current if isinstance(current, RecordingProtocol) else protocol)
        return found


def _never() -> bool:
    return False


class Session:
    """A check's connections, ended when the check is over (a context manager)."""

    def __init__(self, harness: TransportHarness) -> None:
        self.harness = harness
        self.connections: list[Connection] = []

    def connect(
        self,
        client: FlowRecorder | None = None,
        server: FlowRecorder | None = None,
        *,
        keep_open_on_eof: bool = False,
    ) -> Connection:
        """Connect two protocols (FlowRecorders unless given) and run until both are made.

        ``keep_open_on_eof`` is what the default server's ``eof_received`` returns.
        """
        client = client if client is not None else FlowRecorder()
        server = server if server is not None else FlowRecorder(keep_open_on_eof=keep_open_on_eof)
        pair = self.harness.connect(client, server)
        connection = Connection(pair, client, server)
        self.connections.append(connection)
        connection.wait(lambda: client.made and server.made, "connection_made on both sides")
        return connection

    def __enter__(self) -> Session:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, traceback: TracebackType | None
    ) -> None:
        """End every connection; a failure to end them fails a check that had passed."""
        try:
            self.end()
        except Exception:
            if exc is None:
                raise
            # The check's own failure says more; the ending's is secondary.

    def end(self) -> None:
        """Abort what is still open, run until every protocol has had connection_lost, close the pairs.

        Every pair is closed, whatever happens to the others; the first
        problem (connection_lost never coming, abort() or close() raising)
        is raised once all are.
        """
        problems: list[BaseException] = []
        for connection in self.connections:
            try:
                _end(connection)
            except Exception as exc:
                problems.append(exc)
        if problems:
            raise problems[0]


def _end(connection: Connection) -> None:
    protocols = connection.protocols()
    try:
        for protocol in protocols:
            transport = getattr(protocol, "transport", None)
            if transport is not None and not protocol.lost:
                _abort(transport)
        ended = connection.pair.run_until(lambda: all(p.lost for p in protocols), TIMEOUT)
        expect(ended, f"after abort(), connection_lost never came ({_states(protocols)})")
    finally:
        connection.pair.close()


def _abort(transport: Any) -> None:
    try:
        transport.abort()
    except Exception as exc:
        raise CheckFailure(f"abort() raised {type(exc).__name__}: {exc}") from exc


def _states(protocols: list[RecordingProtocol]) -> str:
    return ", ".join(
        f"{'client' if index == 0 else 'server'} lost={p.lost}" for index, p in enumerate(protocols)
    )
