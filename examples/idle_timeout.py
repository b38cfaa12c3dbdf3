"""A protocol that uses time, tested with no sockets and no waiting.

The protocol closes connections that stay quiet for too long.  It learns the
time only from the clock its transport offers, so a test can run it on the
memory driver and move a fake clock instead of sleeping.

Run: python examples/idle_timeout.py
"""

from typing import Any

from weft.drivers.testing import connect
from weft.protocols.contract import TimerHandle, clock_of
from weft.protocols.framing import LineProtocol


class IdleTimeoutEcho(LineProtocol):
    """Echoes lines; closes after ``timeout`` seconds without one."""

    def __init__(self, timeout: float) -> None:
        super().__init__()
        self.timeout = timeout
        self.timer: TimerHandle | None = None

    def connection_made(self, transport: Any) -> None:
        super().connection_made(transport)
        self.restart_timer()

    def line_received(self, line: bytes) -> None:
        self.send_line(line)
        self.restart_timer()

    def restart_timer(self) -> None:
        if self.timer is not None:
            self.timer.cancel()
        self.timer = clock_of(self.transport).call_later(self.timeout, self.idle)

    def idle(self) -> None:
        self.send_line(b"idle too long, bye")
        self.transport.close()

    def connection_lost(self, exc: BaseException | None) -> None:
        if self.timer is not None:
            self.timer.cancel()


conn = connect(IdleTimeoutEcho(timeout=30))
conn.deliver(b"hello\n")
conn.clock.advance(29)  # almost idle...
conn.deliver(b"still here\n")  # ...and the timer starts again
conn.clock.advance(29)
print(f"at {conn.clock.now():.0f} s: closed={conn.closed}")
conn.clock.advance(1)
print(f"at {conn.clock.now():.0f} s: closed={conn.closed}")
print(conn.written.decode(), end="")
print(f"closed after {conn.clock.now():.0f} fake seconds, in no real time at all")
