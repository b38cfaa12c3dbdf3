"""The coroutine driver: what only it promises (one task per connection).

The transport contract is checked by the conformance suite (``coroutine-*``
in ``tests/conformance/``), the loop, pipes and processes by the reactor's own tests, which
run on this driver too, and ``weft serve --driver coroutine`` by the command
line's tests.  Every wait is ``run_until`` with a bound.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterator
from typing import Any

import pytest

from tests.support import TIMEOUT
from weft.drivers import open_runtime
from weft.drivers.coroutine import CoroutineRuntime, TaskReadPipeTransport, TaskTransport
from weft.drivers.coroutines import Task, current_task, open_tcp, run, serve_tcp
from weft.drivers.reactor import Reactor
from weft.drivers.testing import RecordingProtocol
from weft.protocols import EchoProtocol


@pytest.fixture
def runtime() -> Iterator[CoroutineRuntime]:
    made = CoroutineRuntime()
    yield made
    made.close()


class TaskRecorder(RecordingProtocol):
    """Records, with each data_received, the task it runs in."""

    def __init__(self) -> None:
        super().__init__()
        self.tasks: list[Task[Any]] = []

    def data_received(self, data: bytes) -> None:
        self.tasks.append(current_task())
        super().data_received(data)


def connected(runtime: CoroutineRuntime, server: Any = EchoProtocol) -> tuple[TaskRecorder, Any]:
    listener = runtime.listen_tcp(server, "127.0.0.1", 0)
    client = TaskRecorder()
    connecting = runtime.connect_tcp(lambda: client, "127.0.0.1", listener.port)
    assert runtime.run_until(connecting.done, TIMEOUT)
    connecting.result()
    return client, listener


def test_it_is_the_driver_called_coroutine() -> None:
    """``--driver coroutine`` opens it; it is a reactor underneath."""
    made = open_runtime("coroutine")
    try:
        assert isinstance(made, CoroutineRuntime)
        assert isinstance(made, Reactor)
        assert made.name == "coroutine"
    finally:
        made.close()


def test_each_connection_has_its_own_task_and_callbacks_run_in_it(runtime: CoroutineRuntime) -> None:
    """data_received runs inside the connection's task; two connections, two
    tasks; the task is pending while the connection is open and ends with it."""
    first, listener = connected(runtime)
    second = TaskRecorder()
    connecting = runtime.connect_tcp(lambda: second, "127.0.0.1", listener.port)
    assert runtime.run_until(connecting.done, TIMEOUT)
    for protocol in (first, second):
        protocol.transport.write(b"ping")
    assert runtime.run_until(lambda: first.received == b"ping" and second.received == b"ping", TIMEOUT)
    first_task = first.transport.task  # type: ignore[attr-defined]
    second_task = second.transport.task  # type: ignore[attr-defined]
    assert isinstance(first.transport, TaskTransport)
    assert first.tasks == [first_task]
    assert second.tasks == [second_task]
    assert first_task is not second_task
    assert not first_task.done()
    first.transport.close()
    assert runtime.run_until(lambda: first.lost and first_task.done(), TIMEOUT)
    assert first_task.result() is None
    assert not second_task.done()
    second.transport.abort()
    listener.close()
    assert runtime.run_until(lambda: second.lost and second_task.done(), TIMEOUT)


def test_a_write_from_outside_the_task_wakes_it(runtime: CoroutineRuntime) -> None:
    """A write made by a timer (not the connection's own step) is sent: the
    write wakes the waiting task."""
    client, listener = connected(runtime)
    runtime.call_later(0.01, client.transport.write, b"from a timer")
    assert runtime.run_until(lambda: client.received == b"from a timer", TIMEOUT)
    client.transport.abort()
    listener.close()
    assert runtime.run_until(lambda: client.lost and not listener.connections, TIMEOUT)


class Explodes(EchoProtocol):
    def data_received(self, data: bytes) -> None:
        if data == b"boom":
            raise RuntimeError("boom")
        super().data_received(data)


def test_an_exception_in_a_protocol_ends_only_its_connection(
    runtime: CoroutineRuntime, caplog: pytest.LogCaptureFixture
) -> None:
    """The exception is logged, that connection ends with it (its task ends
    cleanly), and the other connection still echoes."""
    victim, listener = connected(runtime, Explodes)
    bystander = TaskRecorder()
    connecting = runtime.connect_tcp(lambda: bystander, "127.0.0.1", listener.port)
    assert runtime.run_until(connecting.done, TIMEOUT)
    with caplog.at_level(logging.ERROR, logger="weft"):
        victim.transport.write(b"boom")
        assert runtime.run_until(lambda: victim.lost, TIMEOUT)
    assert any("boom" in str(record.exc_info) for record in caplog.records)
    bystander.transport.write(b"still here")
    assert runtime.run_until(lambda: bystander.received == b"still here", TIMEOUT)
    server_tasks = [transport.task for transport in listener.connections]
    assert len(server_tasks) == 1
    assert not server_tasks[0].done()
    bystander.transport.abort()
    listener.close()
    assert runtime.run_until(lambda: bystander.lost and not listener.connections, TIMEOUT)


def test_closing_the_runtime_ends_every_connection_and_its_task(caplog: pytest.LogCaptureFixture) -> None:
    """close() aborts what is open: protocols hear connection_lost, and every
    task finishes (none is left to be destroyed while pending)."""
    runtime = CoroutineRuntime()
    client, listener = connected(runtime)
    client.transport.write(b"x")
    assert runtime.run_until(lambda: client.received == b"x", TIMEOUT)
    tasks = [client.transport.task] + [transport.task for transport in listener.connections]  # type: ignore[attr-defined]
    with caplog.at_level(logging.ERROR, logger="weft"):
        runtime.close()
    assert client.lost
    assert all(task.done() for task in tasks)
    assert not caplog.records


def test_coroutine_code_and_callback_code_share_the_runtime(runtime: CoroutineRuntime) -> None:
    """serve_tcp's handlers and a callback protocol talk across one runtime:
    the driver is a coroutine host like any other."""

    async def shout(stream: Any) -> None:
        while line := await stream.readline():
            await stream.send(line.upper())

    listener = serve_tcp(runtime, shout)

    async def client() -> bytes:
        async with await open_tcp(runtime, "127.0.0.1", listener.port) as stream:
            await stream.send(b"hello\n")
            return await stream.readline()

    assert run(runtime, client(), timeout=TIMEOUT) == b"HELLO\n"
    callback_client = RecordingProtocol()
    connecting = runtime.connect_tcp(lambda: callback_client, "127.0.0.1", listener.port)
    assert runtime.run_until(connecting.done, TIMEOUT)
    callback_client.transport.write(b"again\n")
    assert runtime.run_until(lambda: callback_client.received == b"AGAIN\n", TIMEOUT)
    callback_client.transport.close()
    listener.close()
    assert runtime.run_until(lambda: callback_client.lost, TIMEOUT)


def test_a_childs_stderr_is_task_driven_too(runtime: CoroutineRuntime) -> None:
    """spawn_process gives task transports for stdout/stdin and for stderr."""
    out, err = RecordingProtocol(), RecordingProtocol()
    child = runtime.spawn_process(
        lambda: out,
        [sys.executable, "-c", "import sys; sys.stdout.write('out'); sys.stderr.write('err')"],
        stderr=lambda: err,
    )
    assert isinstance(child.transport, TaskTransport)
    assert isinstance(child.stderr_transport, TaskReadPipeTransport)
    assert runtime.run_until(lambda: out.lost and err.lost and child.returncode is not None, TIMEOUT)
    assert (out.received, err.received, child.returncode) == (b"out", b"err", 0)
    with pytest.raises(NotImplementedError):
        child.stderr_transport.write(b"no")
