"""A callback protocol and a coroutine on one fake clock: no sockets, no waiting.

The protocol is callback code: ``line_received`` resolves a Future.  The
conversation is coroutine code: it awaits those futures, with a timeout, on
the same FakeClock, which ``run()`` jumps from deadline to deadline, so 42
seconds of conversation take no real time.

Run: python examples/coroutines_on_the_fake_clock.py
"""

from __future__ import annotations

from weft.drivers import Future
from weft.drivers.coroutines import TimedOutError, fail_after, run
from weft.drivers.testing import FakeClock, connect
from weft.protocols.framing import LineProtocol


class Lines(LineProtocol):
    """Callback style: each line resolves the future a coroutine waits on."""

    def __init__(self, clock: FakeClock) -> None:
        super().__init__()
        self.clock = clock
        self.waiting: Future[bytes] | None = None
        self.backlog: list[bytes] = []

    def line_received(self, line: bytes) -> None:
        if self.waiting is not None and not self.waiting.done():
            self.waiting.set_result(line)
            self.waiting = None
        else:
            self.backlog.append(line)

    def next_line(self) -> Future[bytes]:
        future: Future[bytes] = Future(self.clock.call_soon)
        if self.backlog:
            future.set_result(self.backlog.pop(0))
        else:
            self.waiting = future
        return future


async def converse(protocol: Lines, clock: FakeClock) -> tuple[list[bytes], float]:
    """Coroutine style: greet each name; after 30 quiet seconds, say bye."""
    names: list[bytes] = []
    while True:
        try:
            with fail_after(30):
                name = await protocol.next_line()
        except TimedOutError:
            protocol.send_line(b"bye")
            return names, clock.now()
        protocol.send_line(b"hello, " + name)
        names.append(name)


def main() -> None:
    clock = FakeClock()
    protocol = Lines(clock)
    peer = connect(protocol, clock=clock)
    clock.call_later(5, peer.deliver, b"alice\n")
    clock.call_later(12, peer.deliver, b"bob\n")
    names, when = run(clock, converse(protocol, clock))
    print(peer.written.decode().replace("\n", " | "))
    print(f"greeted {b', '.join(names).decode()}; said bye at {when:g} fake seconds")


if __name__ == "__main__":
    main()
