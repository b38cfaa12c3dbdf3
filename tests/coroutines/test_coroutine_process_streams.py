"""Child processes as coroutine streams: open_process on the reactor, with real children.

Every child is ``cat`` or ``sys.executable -c ...``; every wait is bounded
(``run(..., timeout=...)``); every test checks that it left no descriptor
open (the fixture) and that its children were reaped.
"""

from __future__ import annotations

import shutil
import signal
import sys
from collections.abc import Coroutine, Iterator
from typing import Any, TypeVar, cast

import pytest

from tests.support import TIMEOUT
from tests.support.descriptors import assert_reaped, no_new_fds
from weft.drivers import CapabilityError, ProcessRuntime, Runtime, Stderr, open_runtime
from weft.drivers.coroutines import ProcessStream, Stream, gather, open_process, run, spawn
from weft.drivers.reactor import Reactor
from weft.protocols.errors import ArgumentError, ClosedResourceError

_T = TypeVar("_T")

CAT = shutil.which("cat")

#: The tests that take ``reactor`` run on each driver that starts processes.
pytestmark = pytest.mark.drivers(requires={ProcessRuntime})


@pytest.fixture
def reactor(driver: str) -> Iterator[Reactor]:
    """A runtime with spawn_process (the reactor, the coroutine runtime built on
    it, the blocking runtime, whose tasks run on its scheduler thread: this one).

    Typed as the reactor for its ``_processes``, which the blocking runtime
    has too."""
    with no_new_fds():
        made = cast(Reactor, open_runtime(driver))
        yield made
        # A failed test may leave children: end them (ours, by PID) and reap them.
        for child in list(made._processes):
            child.kill()
        made.run_until(lambda: not made._processes, TIMEOUT)
        made.close()


def python(code: str) -> list[str]:
    """The command line running ``code`` in a fresh Python."""
    return [sys.executable, "-c", code]


def go(reactor: Reactor, coro: Coroutine[Any, Any, _T]) -> _T:
    """Run ``coro`` on the reactor, bounded."""
    return run(reactor, coro, timeout=TIMEOUT)


async def read_all(stream: Stream) -> bytes:
    """Everything until EOF."""
    chunks = []
    while chunk := await stream.receive():
        chunks.append(chunk)
    return b"".join(chunks)


async def finish(child: ProcessStream) -> int:
    """Close the stream, wait for the exit; the status."""
    await child.close()
    return await child.wait()


# ------------------------------------------------------------ the stream


@pytest.mark.skipif(CAT is None, reason="needs cat")
def test_echo_through_cat_with_send_eof(reactor: Reactor) -> None:
    """Lines go to cat's stdin and come back on its stdout; send_eof gives it EOF,
    it exits 0, and the stream reads EOF after the last byte."""
    assert CAT is not None

    async def talk() -> tuple[bytes, bytes, bytes, int]:
        async with open_process(reactor, [CAT]) as cat:
            assert cat.get_extra_info("process") is cat.process
            assert cat.get_extra_info("peername") == ("process", cat.pid)
            await cat.send(b"hello\n")
            first = await cat.readline()
            await cat.send(b"last words, no newline")
            cat.send_eof()
            rest = await read_all(cat)
            status = await cat.wait()
            return first, rest, await cat.receive(), status

    assert go(reactor, talk()) == (b"hello\n", b"last words, no newline", b"", 0)


@pytest.mark.skipif(CAT is None, reason="needs cat")
def test_a_megabyte_through_cat_with_backpressure(reactor: Reactor) -> None:
    """A writer and a reader in two tasks move a megabyte through cat: send waits
    whenever the pipes are full, and every byte comes back in order."""
    assert CAT is not None
    payload = bytes(range(256)) * 4096

    async def write(cat: ProcessStream) -> None:
        for start in range(0, len(payload), 65536):
            await cat.send(payload[start : start + 65536])
        cat.send_eof()

    async def both() -> tuple[bytes, int]:
        cat = open_process(reactor, [CAT], read_limit=4096)
        writer = spawn(reactor, write(cat))
        echoed = await read_all(cat)
        await writer
        return echoed, await finish(cat)

    echoed, status = go(reactor, both())
    assert echoed == payload
    assert status == 0


def test_readline_from_a_child(reactor: Reactor) -> None:
    """readline gives the child's lines one by one, the unterminated tail at its
    exit, then b''."""
    code = "import sys\nprint('one')\nprint('two', flush=True)\nsys.stdout.write('tail')"

    async def lines() -> list[bytes]:
        child = open_process(reactor, python(code))
        got = [await child.readline() for _ in range(4)]
        await finish(child)
        return got

    assert go(reactor, lines()) == [b"one\n", b"two\n", b"tail", b""]


# ----------------------------------------------------- exit and signals


@pytest.mark.parametrize(
    ("code", "expected"),
    [
        ("pass", 0),
        ("raise SystemExit(7)", 7),
        ("import os, signal\nos.kill(os.getpid(), signal.SIGKILL)", -9),
    ],
)
def test_wait_gives_the_exit_status(reactor: Reactor, code: str, expected: int) -> None:
    """wait() gives the exit code, or minus the signal that ended the child;
    returncode is None before and the same after; wait() may be awaited again."""

    async def exit_status() -> tuple[int | None, int, int, int | None]:
        child = open_process(reactor, python(code))
        before = child.returncode
        status = await child.wait()
        again = await child.wait()
        await child.close()
        return before, status, again, child.returncode

    before, status, again, after = go(reactor, exit_status())
    assert before is None
    assert status == again == after == expected


def test_a_child_that_fails_says_why_on_a_stderr_stream(reactor: Reactor) -> None:
    """A child that exits non-zero: its traceback is on the stderr stream, its
    stdout is empty, its status is 1."""

    async def failing() -> tuple[bytes, bytes, int]:
        async with open_process(reactor, python("raise ValueError('broken')"), stderr="stream") as child:
            assert child.stderr is not None
            out, err = await gather(read_all(child), read_all(child.stderr))
            return out, err, await child.wait()

    out, err, status = go(reactor, failing())
    assert out == b""
    assert b"ValueError: broken" in err
    assert status == 1


@pytest.mark.parametrize(("method", "signum"), [("terminate", signal.SIGTERM), ("kill", signal.SIGKILL)])
def test_terminate_and_kill_end_a_child(reactor: Reactor, method: str, signum: int) -> None:
    """A child blocked reading stdin ends on terminate() or kill(): wait() gives
    -signum and the stream reads EOF; the child is reaped."""
    code = "import sys\nprint('ready', flush=True)\nsys.stdin.read()"

    async def end_it() -> tuple[int, bytes, int]:
        async with open_process(reactor, python(code)) as child:
            assert await child.readline() == b"ready\n"
            getattr(child, method)()
            return await child.wait(), await child.receive(), child.pid

    status, tail, pid = go(reactor, end_it())
    assert status == -signum
    assert tail == b""
    assert_reaped(pid)


def test_send_signal_reaches_the_child(reactor: Reactor) -> None:
    """send_signal delivers the very signal asked for; after the exit it does nothing."""
    code = (
        "import signal\n"
        "signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGUSR1, signal.SIGUSR2})\n"
        "print('ready', flush=True)\n"
        "print(signal.Signals(signal.sigwait({signal.SIGUSR1, signal.SIGUSR2})).name)\n"
    )

    async def signal_it() -> tuple[bytes, int]:
        async with open_process(reactor, python(code)) as child:
            assert await child.readline() == b"ready\n"
            child.send_signal(signal.SIGUSR2)
            line = await child.readline()
            status = await child.wait()
            child.kill()  # exited already: nothing happens
            return line, status

    assert go(reactor, signal_it()) == (b"SIGUSR2\n", 0)


def test_closing_the_stream_does_not_wait_for_the_exit(reactor: Reactor) -> None:
    """close() returns once the pipes are closed, while the child still runs; the
    child then ends on its own (EOF on stdin) and wait() reports it."""
    code = "import sys\nsys.stdin.read()\nsys.exit(4)"

    async def close_first() -> tuple[int | None, int]:
        child = open_process(reactor, python(code))
        await child.close()
        running = child.returncode
        return running, await child.wait()

    assert go(reactor, close_first()) == (None, 4)


# ------------------------------------------------------------------- stderr

SPEAKS_ON_BOTH = "import sys\nprint('on stdout', flush=True)\nprint('on stderr', file=sys.stderr, flush=True)"


def test_stderr_is_inherited_by_default(reactor: Reactor, capfd: pytest.CaptureFixture[str]) -> None:
    """By default the child's stderr is ours: the stream carries stdout only."""

    async def both() -> bytes:
        async with open_process(reactor, python(SPEAKS_ON_BOTH)) as child:
            assert child.stderr is None
            out = await read_all(child)
            await child.wait()
            return out

    assert go(reactor, both()) == b"on stdout\n"
    assert "on stderr" in capfd.readouterr().err


@pytest.mark.parametrize(
    ("choice", "expected"), [(Stderr.STDOUT, b"on stdout\non stderr\n"), (Stderr.DEVNULL, b"on stdout\n")]
)
def test_stderr_can_join_stdout_or_be_dropped(
    reactor: Reactor, capfd: pytest.CaptureFixture[str], choice: Stderr, expected: bytes
) -> None:
    """Stderr.STDOUT mixes it into the stream in the order written; Stderr.DEVNULL
    drops it; neither reaches our stderr."""

    async def both() -> bytes:
        async with open_process(reactor, python(SPEAKS_ON_BOTH), stderr=choice) as child:
            out = await read_all(child)
            await child.wait()
            return out

    assert go(reactor, both()) == expected
    assert "on stderr" not in capfd.readouterr().err


def test_stderr_as_a_stream_of_its_own(reactor: Reactor) -> None:
    """stderr='stream' gives a second, read-only stream: the child's stderr, then
    EOF; sending to it is refused; close() closes it with the rest."""

    async def both() -> tuple[bytes, bytes]:
        child = open_process(reactor, python(SPEAKS_ON_BOTH), stderr="stream")
        errors = child.stderr
        assert errors is not None
        assert errors.get_extra_info("process") is child.process
        with pytest.raises(NotImplementedError):
            await errors.send(b"to a child's stderr?")
        out, err = await gather(read_all(child), read_all(errors))
        await finish(child)
        with pytest.raises(ClosedResourceError):
            await errors.receive()
        return out, err

    assert go(reactor, both()) == (b"on stdout\n", b"on stderr\n")


def test_an_unread_stderr_stream_is_closed_with_the_process_stream(reactor: Reactor) -> None:
    """A stderr stream nobody reads is closed by close() (the fixture checks no
    descriptor is left)."""

    async def ignore_stderr() -> bytes:
        child = open_process(reactor, python(SPEAKS_ON_BOTH), stderr="stream")
        out = await read_all(child)
        await finish(child)
        return out

    assert go(reactor, ignore_stderr()) == b"on stdout\n"


# --------------------------------------------------------------------- PTYs

ASKS_A_NAME = "print('got', input('name? '))"


def test_a_child_on_a_pty(reactor: Reactor) -> None:
    """With pty=True the child is on a terminal: it prompts, the terminal echoes
    what is sent and ends lines with \\r\\n, and the child's exit is EOF; a
    terminal cannot half-close."""

    async def converse() -> tuple[bytes, int]:
        async with open_process(reactor, python(ASKS_A_NAME), pty=True) as child:
            with pytest.raises(NotImplementedError):
                child.send_eof()
            prompt = b""
            while not prompt.endswith(b"name? "):
                prompt += await child.receive()
            await child.send(b"weft\n")
            return prompt + await read_all(child), await child.wait()

    assert go(reactor, converse()) == (b"name? weft\r\ngot weft\r\n", 0)


# ------------------------------------------------------ starting, refusing


def test_a_program_that_cannot_start_raises_at_once(reactor: Reactor, tmp_path: Any) -> None:
    """A program that does not exist raises FileNotFoundError from open_process,
    with nothing left open (the fixture checks)."""
    with pytest.raises(FileNotFoundError):
        open_process(reactor, [str(tmp_path / "no-such-program")], stderr="stream")
    assert not reactor._processes


def test_bad_arguments_are_refused(reactor: Reactor) -> None:
    """A command line as one string, an empty one, and an unknown stderr choice
    are refused before anything starts."""
    with pytest.raises(TypeError, match="not a string"):
        open_process(reactor, "python -c pass")
    with pytest.raises(ArgumentError, match="empty"):
        open_process(reactor, [])
    with pytest.raises(ArgumentError, match="stderr"):
        open_process(reactor, python("pass"), stderr="devnull")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="stderr"):
        open_process(reactor, python("pass"), stderr=2)  # type: ignore[arg-type]
    assert not reactor._processes


@pytest.mark.drivers(lacks={ProcessRuntime})
def test_runtimes_without_processes_refuse_clearly(runtime: Runtime) -> None:
    """A runtime that cannot start processes (asyncio's) raises CapabilityError (a
    NotImplementedError) naming it and the capability; mypy refuses the call too."""
    refusal = rf"{runtime.name!r} runtime cannot start processes.*ProcessRuntime"
    with pytest.raises(CapabilityError, match=refusal):
        open_process(runtime, python("pass"))  # type: ignore[arg-type]
    assert issubclass(CapabilityError, NotImplementedError)
