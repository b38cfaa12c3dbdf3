"""Talk to a child process line by line, with a weft LineProtocol on the reactor.

The reactor starts the child and hands the protocol one transport: what it
writes goes to the child's stdin, what the child prints comes back as lines.
The child here is a small Python program that answers each line in capitals;
any program that reads and writes lines would do.

Run: python examples/process_lines.py
"""

import sys
from typing import Any

from weft.drivers.reactor import Reactor
from weft.protocols.framing import LineProtocol

CHILD = "import sys\nfor line in sys.stdin:\n    print(line.strip().upper(), flush=True)\n"


class Asker(LineProtocol):
    """Asks each question once the previous answer is in; then closes the child's stdin."""

    def __init__(self, questions: list[bytes]) -> None:
        super().__init__()
        self.questions = questions
        self.answers: list[bytes] = []
        self.done = False

    def connection_made(self, transport: Any) -> None:
        super().connection_made(transport)
        self.ask_next()

    def line_received(self, line: bytes) -> None:
        print(f"child answered {line.decode()}")
        self.answers.append(line)
        self.ask_next()

    def ask_next(self) -> None:
        if self.questions:
            self.send_line(self.questions.pop(0))
        else:
            self.transport.write_eof()  # the child reads EOF, its loop ends, it exits

    def connection_lost(self, exc: BaseException | None) -> None:
        self.done = True


protocol = Asker([b"hello", b"weft"])
with Reactor() as reactor:
    child = reactor.spawn_process(lambda: protocol, [sys.executable, "-c", CHILD])
    # The stream and the process end separately: wait for both.
    reactor.run_until(lambda: protocol.done and child.returncode is not None, timeout=30)
print(f"answers {protocol.answers}, exit status {child.returncode}")
