"""The client examples of docs/drivers.md run, as written, against a real pub/sub server."""

from __future__ import annotations

import re
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from weft.drivers.blocking import BlockingRuntime
from weft.protocols.pubsub import PubSubHub, PubSubServerProtocol

DOC = Path(__file__).resolve().parent.parent / "docs" / "drivers.md"


def client_examples() -> list[str]:
    blocks = re.findall(r"```python\n(.*?)```", DOC.read_text(), re.S)
    return [block for block in blocks if "PubSubClientProtocol(" in block]


@pytest.fixture
def pubsub_port() -> Iterator[int]:
    """A pub/sub server on a free port, on the blocking driver in a thread."""
    hub = PubSubHub()
    server = BlockingRuntime()
    listener = server.listen_tcp(lambda: PubSubServerProtocol(hub), "127.0.0.1", 0)
    thread = threading.Thread(target=server.run)
    thread.start()
    yield listener.port
    server.call_soon_threadsafe(server.stop)
    thread.join(10)
    server.close()


def test_the_page_shows_the_client_three_ways() -> None:
    """Callbacks, blocking and coroutines: three client examples."""
    assert len(client_examples()) == 3


@pytest.mark.parametrize("index", range(3))
def test_each_client_example_gets_its_own_message(
    pubsub_port: int, index: int, capsys: pytest.CaptureFixture[str]
) -> None:
    """Each example, pointed at the test's server, receives the message it published."""
    code = client_examples()[index].replace("8000", str(pubsub_port))
    scope: dict[str, Any] = {}
    exec(compile(code, f"docs/drivers.md example {index + 1}", "exec"), scope)
    received = scope.get("got")
    assert received == [b"hello"] or capsys.readouterr().out == "b'hello'\n"
