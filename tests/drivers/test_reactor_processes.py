"""Child processes on the reactor: stdio as one stream, exit status, signals, stderr, PTYs.

Every child is ``sys.executable -c ...``; every wait is ``run_until`` with a
bound; every test checks that it left no descriptor open (the fixture) and
that each child it started was reaped.  Each test runs on the reactor, on
the coroutine driver (whose process transports are task-driven) and on the
blocking driver (threads and blocking pipes; a thread waits for the exit).
"""

from __future__ import annotations

import os
import signal
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import pytest

from tests.support import TIMEOUT
from tests.support.descriptors import assert_reaped, no_new_fds
from weft.drivers import Process, ProcessRuntime, Stderr, open_runtime
from weft.drivers._core import child_processes
from weft.drivers.blocking import BlockingRuntime
from weft.drivers.reactor import Reactor
from weft.drivers.testing import RecordingProtocol
from weft.protocols.errors import ArgumentError
from weft.protocols.framing import LineProtocol

if TYPE_CHECKING:
    from weft.drivers.trio import TrioRuntime

#: Every test runs on each driver that starts processes (the ``reactor`` fixture).
pytestmark = pytest.mark.drivers(requires={ProcessRuntime})


@pytest.fixture
def reactor(driver: str) -> Iterator[Reactor]:
    """A runtime of ``driver``, checked for descriptors left open and children left running.

    Typed as the reactor for its ``_processes`` and ``_ready``, which the
    blocking runtime has too (see :func:`idle`)."""
    with no_new_fds():
        made = cast(Reactor, open_runtime(driver))
        yield made
        # A failed test may leave children: end them (ours, by PID) and reap them.
        for child in list(made._processes):
            child.kill()
        made.run_until(lambda: not made._processes, TIMEOUT)
        made.close()


def idle(runtime: Reactor | BlockingRuntime | TrioRuntime) -> bool:
    """Nothing left to run: no callback ready (the reactors, and the Twisted
    driver's queue), no connection open (the blocking and trio drivers, whose
    connections are threads or tasks)."""
    if isinstance(runtime, Reactor) or not hasattr(runtime, "connections"):
        return not cast(Reactor, runtime)._ready
    return not runtime.connections


def python(code: str, *args: str) -> list[str]:
    """The command line running ``code`` in a fresh Python."""
    return [sys.executable, "-c", code, *args]


def finished(protocol: RecordingProtocol, child: Process) -> bool:
    """Both the stream and the process are over."""
    return protocol.lost and child.returncode is not None


def run_to_the_end(reactor: Reactor, protocol: RecordingProtocol, child: Process) -> None:
    assert reactor.run_until(lambda: finished(protocol, child), TIMEOUT), (
        f"stream lost: {protocol.lost}, returncode: {child.returncode}, received: {protocol.received!r}"
    )
    assert_reaped(child.pid)


# ------------------------------------------------------------ the stream


class Conversation(LineProtocol):
    """Says each line only once the answer to the previous one came back."""

    def __init__(self, lines: list[bytes]) -> None:
        super().__init__()
        self.to_say = list(lines)
        self.answers: list[bytes] = []
        self.lost = False

    def connection_made(self, transport: Any) -> None:
        super().connection_made(transport)
        self.say_next()

    def line_received(self, line: bytes) -> None:
        self.answers.append(line)
        self.say_next()

    def say_next(self) -> None:
        if self.to_say:
            self.send_line(self.to_say.pop(0))
        else:
            self.transport.write_eof()

    def connection_lost(self, exc: BaseException | None) -> None:
        self.lost = True


UPPER_ECHO = (
    "import sys\nfor line in sys.stdin:\n    sys.stdout.write(line.upper())\n    sys.stdout.flush()\n"
)


def test_a_line_protocol_converses_with_a_child(reactor: Reactor) -> None:
    """A LineProtocol talks to a child line by line through one duplex transport
    (stdin out, stdout in); write_eof ends the child, which exits 0; the
    transport names the process as its peer."""
    protocol = Conversation([b"hello", b"weft", b"bye"])
    child = reactor.spawn_process(lambda: protocol, python(UPPER_ECHO))
    assert protocol.transport.get_extra_info("process") is child
    assert protocol.transport.get_extra_info("peername") == ("process", child.pid)
    assert protocol.transport.can_write_eof()
    assert reactor.run_until(lambda: protocol.lost and child.returncode is not None, TIMEOUT)
    assert protocol.answers == [b"HELLO", b"WEFT", b"BYE"]
    assert child.returncode == 0
    assert_reaped(child.pid)


def test_write_eof_reaches_the_child_as_eof_after_all_the_data(reactor: Reactor) -> None:
    """Data bigger than a pipe's buffer, then write_eof: the child reads all of it
    and then EOF (its read() returns), and says how much it got."""
    protocol = RecordingProtocol()
    code = "import sys\ndata = sys.stdin.buffer.read()\nprint(len(data), 'bytes, then EOF')"
    child = reactor.spawn_process(lambda: protocol, python(code))
    protocol.transport.write(bytes(300 * 1024))
    protocol.transport.write_eof()
    run_to_the_end(reactor, protocol, child)
    assert protocol.received == b"307200 bytes, then EOF\n"
    assert protocol.events[-1] == ("connection_lost", None)


def test_the_stream_ends_without_waiting_for_the_exit(reactor: Reactor) -> None:
    """A child that closes its stdout ends the stream (connection_lost) while it
    is still running; it exits later, when the transport's close gives it EOF."""
    protocol = RecordingProtocol()
    returncode_when_lost: list[int | None] = []
    lost = protocol.connection_lost

    def connection_lost(exc: BaseException | None) -> None:
        returncode_when_lost.append(child.returncode)
        lost(exc)

    protocol.connection_lost = connection_lost  # type: ignore[method-assign]
    code = "import os, sys\nos.close(1)\nsys.stdin.read()\nsys.exit(4)"
    child = reactor.spawn_process(lambda: protocol, python(code))
    run_to_the_end(reactor, protocol, child)
    assert returncode_when_lost == [None]
    assert child.returncode == 4


def test_the_exit_is_reported_while_a_grandchild_keeps_the_stream(reactor: Reactor) -> None:
    """A child that exits leaving a grandchild on its stdout: the exit status comes
    at once, while the stream stays open; the stream ends when the grandchild,
    given EOF, exits too."""
    protocol = RecordingProtocol()
    grandchild = "import sys\nsys.stdin.read()\nprint('grandchild done')"
    code = (
        f"import subprocess, sys\nsubprocess.Popen([sys.executable, '-c', {grandchild!r}])\n"
        "print('child done')"
    )
    child = reactor.spawn_process(lambda: protocol, python(code))
    assert reactor.run_until(
        lambda: child.returncode is not None and b"child done" in protocol.received, TIMEOUT
    )
    assert child.returncode == 0
    assert not protocol.lost
    protocol.transport.write_eof()
    assert reactor.run_until(lambda: protocol.lost, TIMEOUT)
    assert protocol.received == b"child done\ngrandchild done\n"
    assert_reaped(child.pid)


# ----------------------------------------------------- exit and signals


@pytest.mark.parametrize(
    ("code", "expected"),
    [
        ("pass", 0),
        ("raise SystemExit(7)", 7),
        ("import os, signal\nos.kill(os.getpid(), signal.SIGKILL)", -signal.SIGKILL),
    ],
)
def test_the_exit_status_arrives_as_returncode_and_future(reactor: Reactor, code: str, expected: int) -> None:
    """returncode is None while the child runs, then its exit code, or minus the
    signal that killed it (as subprocess); the exited future gets the same, and
    its callbacks run on the loop."""
    protocol = RecordingProtocol()
    child = reactor.spawn_process(lambda: protocol, python(code))
    assert child.returncode is None
    assert not child.exited.done()
    heard: list[int] = []
    child.exited.add_done_callback(lambda future: heard.append(future.result()))
    run_to_the_end(reactor, protocol, child)
    assert reactor.run_until(lambda: bool(heard), TIMEOUT)
    assert child.returncode == expected
    assert heard == [expected]


@pytest.mark.parametrize(("method", "signum"), [("terminate", signal.SIGTERM), ("kill", signal.SIGKILL)])
def test_terminate_and_kill_end_the_child(reactor: Reactor, method: str, signum: int) -> None:
    """terminate() sends SIGTERM and kill() SIGKILL: a child blocked reading
    stdin ends with returncode -signum."""
    protocol = RecordingProtocol()
    child = reactor.spawn_process(lambda: protocol, python("import sys\nsys.stdin.read()"))
    getattr(child, method)()
    assert reactor.run_until(lambda: child.returncode is not None, TIMEOUT)
    assert child.returncode == -signum
    protocol.transport.close()
    run_to_the_end(reactor, protocol, child)


# Blocks the signal and waits for it with sigwait: a handler would race with
# the blocking read it interrupts (a signal landing just before read() starts
# is only handled once read() returns, which may be never).
SIGNAL_REPORTER = """
import signal
signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGUSR1, signal.SIGUSR2})
print("ready", flush=True)
print("got", signal.Signals(signal.sigwait({signal.SIGUSR1, signal.SIGUSR2})).name)
"""


def test_send_signal_reaches_the_child(reactor: Reactor) -> None:
    """send_signal delivers the very signal asked for (SIGUSR1, not SIGUSR2)."""
    protocol = RecordingProtocol()
    child = reactor.spawn_process(lambda: protocol, python(SIGNAL_REPORTER))
    assert reactor.run_until(lambda: b"ready\n" in protocol.received, TIMEOUT)
    child.send_signal(signal.SIGUSR1)
    run_to_the_end(reactor, protocol, child)
    assert protocol.received == b"ready\ngot SIGUSR1\n"
    assert child.returncode == 0


def test_signals_after_the_exit_do_nothing(reactor: Reactor) -> None:
    """Once the child has exited, send_signal, terminate and kill do nothing and
    raise nothing (as subprocess), and the exit status stays."""
    protocol = RecordingProtocol()
    child = reactor.spawn_process(lambda: protocol, python("raise SystemExit(3)"))
    run_to_the_end(reactor, protocol, child)
    child.send_signal(signal.SIGUSR1)
    child.terminate()
    child.kill()
    assert child.returncode == 3
    assert child.exited.result() == 3


def test_no_sigchld_handler_is_installed(reactor: Reactor) -> None:
    """Watching children changes no process-wide state: SIGCHLD keeps its handler."""
    before = signal.getsignal(signal.SIGCHLD)
    protocol = RecordingProtocol()
    child = reactor.spawn_process(lambda: protocol, python("pass"))
    run_to_the_end(reactor, protocol, child)
    assert signal.getsignal(signal.SIGCHLD) == before


def test_without_a_pidfd_a_thread_waits(reactor: Reactor, monkeypatch: pytest.MonkeyPatch) -> None:
    """Where pidfd_open is missing, the exit still arrives (from a waiting thread,
    through call_soon_threadsafe) and signals still work."""
    monkeypatch.setattr(child_processes, "_pidfd_open", None)
    protocol = RecordingProtocol()
    child = reactor.spawn_process(lambda: protocol, python("raise SystemExit(5)"))
    run_to_the_end(reactor, protocol, child)
    assert child.returncode == 5

    protocol = RecordingProtocol()
    child = reactor.spawn_process(lambda: protocol, python(SIGNAL_REPORTER))
    assert reactor.run_until(lambda: b"ready\n" in protocol.received, TIMEOUT)
    child.send_signal(signal.SIGUSR1)
    run_to_the_end(reactor, protocol, child)
    assert protocol.received == b"ready\ngot SIGUSR1\n"


def test_a_child_running_when_the_reactor_closes_is_still_reaped() -> None:
    """Closing the reactor under a running child leaks nothing: its pidfd is
    closed, and a thread reaps the child once it ends (here, killed), so it
    never stays a zombie."""
    with no_new_fds():
        reactor = Reactor()
        protocol = RecordingProtocol()
        child = reactor.spawn_process(lambda: protocol, python("import signal\nsignal.pause()"))
        protocol.transport.close()
        assert reactor.run_until(lambda: protocol.lost, TIMEOUT)
        assert child.returncode is None
        reactor.close()
        child.kill()
        waiters = [thread for thread in threading.enumerate() if thread.name == f"weft-wait-{child.pid}"]
        assert len(waiters) == 1
        waiters[0].join(TIMEOUT)
        assert not waiters[0].is_alive()
        assert_reaped(child.pid)


# ------------------------------------------------------------------- stderr

SPEAKS_ON_BOTH = "import sys\nprint('on stdout', flush=True)\nprint('on stderr', file=sys.stderr, flush=True)"


def test_stderr_is_inherited_by_default(reactor: Reactor, capfd: pytest.CaptureFixture[str]) -> None:
    """By default the child writes its stderr straight to ours, not to the transport."""
    protocol = RecordingProtocol()
    child = reactor.spawn_process(lambda: protocol, python(SPEAKS_ON_BOTH))
    run_to_the_end(reactor, protocol, child)
    assert protocol.received == b"on stdout\n"
    assert "on stderr" in capfd.readouterr().err


def test_stderr_can_be_discarded(reactor: Reactor, capfd: pytest.CaptureFixture[str]) -> None:
    """Stderr.DEVNULL sends it nowhere: neither to our stderr nor to the transport."""
    protocol = RecordingProtocol()
    child = reactor.spawn_process(lambda: protocol, python(SPEAKS_ON_BOTH), stderr=Stderr.DEVNULL)
    run_to_the_end(reactor, protocol, child)
    assert protocol.received == b"on stdout\n"
    assert "on stderr" not in capfd.readouterr().err


def test_stderr_can_join_stdout(reactor: Reactor, capfd: pytest.CaptureFixture[str]) -> None:
    """Stderr.STDOUT merges it into the transport's read side, in the order written."""
    protocol = RecordingProtocol()
    child = reactor.spawn_process(lambda: protocol, python(SPEAKS_ON_BOTH), stderr=Stderr.STDOUT)
    run_to_the_end(reactor, protocol, child)
    assert protocol.received == b"on stdout\non stderr\n"
    assert "on stderr" not in capfd.readouterr().err


def test_stderr_can_be_read_by_a_protocol_of_its_own(reactor: Reactor) -> None:
    """A protocol factory as stderr gets a read-only transport: the child's stderr
    as data, then EOF, then a clean end; writing to it is refused."""
    protocol, errors = RecordingProtocol(), RecordingProtocol()
    child = reactor.spawn_process(lambda: protocol, python(SPEAKS_ON_BOTH), stderr=lambda: errors)
    assert child.stderr_transport is errors.transport
    assert errors.transport.get_extra_info("process") is child
    assert not errors.transport.can_write_eof()
    with pytest.raises(NotImplementedError):
        errors.transport.write(b"to a child's stderr?")
    run_to_the_end(reactor, protocol, child)
    assert reactor.run_until(lambda: errors.lost, TIMEOUT)
    assert protocol.received == b"on stdout\n"
    assert errors.received == b"on stderr\n"
    assert errors.names[-2:] == ["eof_received", "connection_lost"]


# --------------------------------------------------------------------- PTYs

ON_A_TERMINAL = """
import os
print("isatty", [os.isatty(fd) for fd in (0, 1, 2)])
open("/dev/tty").close()  # fails (ENXIO) without a controlling terminal
# tcgetpgrp(0) fails (ENOTTY) unless fd 0 is the controlling terminal.
print("foreground", os.tcgetpgrp(0) == os.getpgrp(), "session leader", os.getsid(0) == os.getpid())
print("got", input("name? "))
"""


def test_a_pty_child_runs_on_a_terminal(reactor: Reactor) -> None:
    """With pty=True the child's stdin, stdout and stderr are a terminal, which is
    its controlling terminal; it reads a line typed into the transport and answers;
    its exit (EIO on the master) is a clean EOF; a PTY cannot half-close."""
    protocol = RecordingProtocol()
    child = reactor.spawn_process(lambda: protocol, python(ON_A_TERMINAL), pty=True)
    assert not protocol.transport.can_write_eof()
    with pytest.raises(NotImplementedError):
        protocol.transport.write_eof()
    # Typed once the prompt is there, so that the terminal's echo of it cannot
    # land in the middle of the child's earlier output.
    assert reactor.run_until(lambda: protocol.received.endswith(b"name? "), TIMEOUT)
    protocol.transport.write(b"weft\n")
    run_to_the_end(reactor, protocol, child)
    assert protocol.received == (
        b"isatty [True, True, True]\r\n"  # \r\n: the terminal's output processing
        b"foreground True session leader True\r\n"
        b"name? weft\r\n"  # the terminal echoes what is typed
        b"got weft\r\n"
    )
    assert protocol.events[-2:] == [("eof_received",), ("connection_lost", None)]
    assert child.returncode == 0


WAITS_ON_THE_TERMINAL = """
import signal, sys
signal.signal(signal.SIGINT, signal.SIG_DFL)
print("ready", flush=True)
sys.stdin.read()
"""


def test_ctrl_c_on_the_pty_interrupts_the_child(reactor: Reactor) -> None:
    """Typing ^C into the PTY sends SIGINT to the child: it is the terminal's
    foreground process, as in a shell."""
    protocol = RecordingProtocol()
    child = reactor.spawn_process(lambda: protocol, python(WAITS_ON_THE_TERMINAL), pty=True)
    assert reactor.run_until(lambda: b"ready" in protocol.received, TIMEOUT)
    protocol.transport.write(b"\x03")
    run_to_the_end(reactor, protocol, child)
    assert child.returncode == -signal.SIGINT


def test_closing_the_pty_hangs_up_the_child(reactor: Reactor) -> None:
    """Closing a PTY transport hangs the terminal up: the child gets SIGHUP, as
    when a terminal window closes."""
    protocol = RecordingProtocol()
    child = reactor.spawn_process(lambda: protocol, python(WAITS_ON_THE_TERMINAL), pty=True)
    assert reactor.run_until(lambda: b"ready" in protocol.received, TIMEOUT)
    protocol.transport.close()
    run_to_the_end(reactor, protocol, child)
    assert child.returncode == -signal.SIGHUP


def test_a_pty_child_can_keep_stderr_apart(reactor: Reactor) -> None:
    """On a PTY stderr goes to the terminal by default, but can be read apart."""
    protocol, errors = RecordingProtocol(), RecordingProtocol()
    child = reactor.spawn_process(lambda: protocol, python(SPEAKS_ON_BOTH), pty=True, stderr=lambda: errors)
    run_to_the_end(reactor, protocol, child)
    assert reactor.run_until(lambda: errors.lost, TIMEOUT)
    assert protocol.received == b"on stdout\r\n"
    assert errors.received == b"on stderr\n"


# ------------------------------------------------------ starting, refusing


def test_env_and_cwd_reach_the_child(reactor: Reactor, tmp_path: Path) -> None:
    """env replaces the child's environment and cwd is where it starts."""
    protocol = RecordingProtocol()
    code = "import os\nprint(os.environ.get('WEFT_TEST'), 'HOME' in os.environ, os.getcwd())"
    child = reactor.spawn_process(lambda: protocol, python(code), env={"WEFT_TEST": "yes"}, cwd=tmp_path)
    run_to_the_end(reactor, protocol, child)
    assert protocol.received.decode() == f"yes False {os.path.realpath(tmp_path)}\n"


def test_a_program_that_cannot_start_raises_and_leaves_nothing(reactor: Reactor, tmp_path: Path) -> None:
    """A program that does not exist raises FileNotFoundError from spawn_process;
    the protocol never hears connection_made and no descriptor is left open."""
    protocol = RecordingProtocol()
    with pytest.raises(FileNotFoundError):
        reactor.spawn_process(lambda: protocol, [str(tmp_path / "no-such-program")], stderr=lambda: protocol)
    assert protocol.events == []
    assert not reactor._processes


def test_bad_arguments_are_refused(reactor: Reactor) -> None:
    """A command line given as one string (a classic shell-quoting bug) and a
    stderr that is neither a choice nor a factory raise TypeError; an empty
    command line raises ArgumentError; nothing is started."""
    protocol = RecordingProtocol()
    with pytest.raises(TypeError, match="not a string"):
        reactor.spawn_process(lambda: protocol, "python -c pass")
    with pytest.raises(ArgumentError, match="empty"):
        reactor.spawn_process(lambda: protocol, [])
    with pytest.raises(TypeError, match="stderr"):
        reactor.spawn_process(lambda: protocol, python("pass"), stderr=2)  # type: ignore[arg-type]
    assert protocol.events == []
    assert not reactor._processes


def test_many_children_of_every_kind_leave_nothing_behind(reactor: Reactor) -> None:
    """Twenty children (pipes, captured stderr, PTYs), all run to the end: every
    one is reaped and every descriptor closed (the fixture checks the fds)."""
    children: list[tuple[RecordingProtocol, Process]] = []
    for index in range(20):
        protocol = RecordingProtocol()
        kind = index % 3
        child = reactor.spawn_process(
            lambda protocol=protocol: protocol,  # type: ignore[misc]
            python(SPEAKS_ON_BOTH),
            stderr=(lambda: RecordingProtocol()) if kind == 1 else Stderr.DEVNULL,
            pty=kind == 2,
        )
        children.append((protocol, child))
    assert reactor.run_until(lambda: all(finished(protocol, child) for protocol, child in children), TIMEOUT)
    assert reactor.run_until(
        lambda: all(child.stderr_transport is None or child.stderr_transport._lost for _, child in children),
        TIMEOUT,
    )
    for protocol, child in children:
        assert child.returncode == 0
        assert b"on stdout" in protocol.received
        assert_reaped(child.pid)
    assert reactor.run_until(lambda: idle(reactor), TIMEOUT)
