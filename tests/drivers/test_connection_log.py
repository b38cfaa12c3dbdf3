"""Every driver says, at debug level, when a connection opens and when it
ends, on its own logger (``weft.drivers.<driver>``), with the addresses as
extras; with debug off it formats nothing."""

from __future__ import annotations

import logging
from typing import Any

import pytest

from tests.support import TIMEOUT
from weft.drivers import TCPRuntime
from weft.drivers._core.connection_log import log_closed, log_opened
from weft.drivers._runtime import Runtime
from weft.protocols import EchoProtocol
from weft.protocols.contract import Transport


class SayHiThenClose:
    """Sends one line, and closes once it comes back."""

    def __init__(self) -> None:
        self.transport: Transport | None = None

    def connection_made(self, transport: Transport) -> None:
        self.transport = transport
        transport.write(b"hi\n")

    def data_received(self, data: bytes) -> None:
        if self.transport is not None:
            self.transport.close()

    def eof_received(self) -> bool:
        return False

    def connection_lost(self, exc: BaseException | None) -> None:
        pass


def connection_records(records: list[logging.LogRecord]) -> list[logging.LogRecord]:
    return [record for record in records if getattr(record, "event", None) in ("open", "close")]


@pytest.mark.drivers(requires={TCPRuntime})
def test_open_and_close_are_logged_at_debug(
    runtime: Runtime, driver: str, caplog: pytest.LogCaptureFixture
) -> None:
    """A client and the server's side of one connection: each opens and closes
    once, on the driver's logger, naming both ends."""
    with caplog.at_level(logging.DEBUG, logger="weft"):
        listener = runtime.listen_tcp(EchoProtocol, "127.0.0.1", 0)
        port = listener.addresses[0][1]
        runtime.connect_tcp(SayHiThenClose, "127.0.0.1", port)

        def both_closed() -> bool:
            closes = [r for r in list(caplog.records) if getattr(r, "event", None) == "close"]
            return len(closes) >= 2

        assert runtime.run_until(both_closed, TIMEOUT)
        listener.close()
    records = connection_records(caplog.records)
    assert sorted(record.event for record in records) == ["close", "close", "open", "open"]  # type: ignore[attr-defined]
    expected_logger = "weft.drivers.coroutine" if driver == "coroutine" else f"weft.drivers.{driver}"
    if driver == "uvloop":
        expected_logger = "weft.drivers.asyncio"  # uvloop runs through the asyncio adapter
    assert {record.name for record in records} == {expected_logger}
    assert all(record.levelno == logging.DEBUG for record in records)
    server_side = [record for record in records if record.local == f"127.0.0.1:{port}"]  # type: ignore[attr-defined]
    assert [record.event for record in server_side] == ["open", "close"]  # type: ignore[attr-defined]
    assert server_side[0].getMessage().startswith("connection open with 127.0.0.1:")


class Addresses:
    """A transport stand-in that counts how often its addresses are asked for."""

    def __init__(self) -> None:
        self.asked = 0

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        self.asked += 1
        return ("127.0.0.1", 8000) if name == "sockname" else ("127.0.0.1", 51234)


def test_nothing_is_formatted_when_debug_is_off(caplog: pytest.LogCaptureFixture) -> None:
    """With the logger above debug, the helpers do not even look the addresses up."""
    logger = logging.getLogger("weft.drivers")
    transport = Addresses()
    with caplog.at_level(logging.INFO, logger="weft"):
        log_opened(logger, transport)
        log_closed(logger, transport, ConnectionResetError(104, "Connection reset by peer"))
    assert (transport.asked, caplog.records) == (0, [])


def test_a_lost_connection_says_why(caplog: pytest.LogCaptureFixture) -> None:
    """An end with an error says it, in the line and as the ``error`` extra."""
    logger = logging.getLogger("weft.drivers")
    with caplog.at_level(logging.DEBUG, logger="weft"):
        log_closed(logger, Addresses(), ConnectionResetError(104, "Connection reset by peer"))
    (record,) = caplog.records
    assert record.getMessage() == (
        "connection lost with 127.0.0.1:51234 (local 127.0.0.1:8000): Connection reset by peer"
    )
    assert record.error == "Connection reset by peer"  # type: ignore[attr-defined]
