"""One datagram check's use of a bench: the endpoints it opens, waits with clear failures,
and the ending of everything it opened."""

from __future__ import annotations

import socket
from collections.abc import Callable
from dataclasses import dataclass
from types import TracebackType
from typing import Any

from weft.drivers.testing._recording import RecordingDatagramProtocol
from weft.drivers.testing.conformance._datagram_harness import DatagramBench, DatagramHarness
from weft.drivers.testing.conformance._expectations import CheckFailure, NotApplicable, expect
from weft.drivers.testing.conformance._session import A_WHILE, TIMEOUT
from weft.protocols.contract import DatagramTransport

__all__ = ["DatagramSession", "Endpoint"]


@dataclass
class Endpoint:
    """An endpoint a check opened: its protocol and its transport."""

    protocol: RecordingDatagramProtocol
    transport: DatagramTransport

    @property
    def address(self) -> Any:
        """Where it is bound (``get_extra_info("sockname")``)."""
        return self.transport.get_extra_info("sockname")


class DatagramSession:
    """A datagram check's bench and endpoints, ended when the check is over (a context manager)."""

    def __init__(self, harness: DatagramHarness) -> None:
        self.harness = harness
        self.bench: DatagramBench = harness.open()
        self.endpoints: list[Endpoint] = []

    # ------------------------------------------------------------ opening

    def udp(
        self,
        local: tuple[Any, ...] | None = ("127.0.0.1", 0),
        remote: tuple[Any, ...] | None = None,
        *,
        protocol: RecordingDatagramProtocol | None = None,
        family: int = 0,
    ) -> Endpoint:
        """A UDP endpoint (bound to a free loopback port by default), once made."""
        protocol = protocol if protocol is not None else RecordingDatagramProtocol()
        opening = self.bench.open_udp(lambda: protocol, local, remote, family=family)
        return self._opened(opening, protocol, f"open_udp({local!r}, {remote!r})")

    def udp6(self, remote: tuple[Any, ...] | None = None) -> Endpoint:
        """A UDP endpoint on IPv6 loopback; the check steps aside where there is none."""
        if not self.bench.has_ipv6:
            raise NotApplicable("no IPv6 loopback here")
        return self.udp(("::1", 0), remote, family=socket.AF_INET6)

    def unix(
        self,
        name: str | None,
        remote: Endpoint | None = None,
        *,
        protocol: RecordingDatagramProtocol | None = None,
    ) -> Endpoint:
        """A UNIX datagram endpoint bound to the bench's path ``name`` (unbound
        for ``None``), connected to ``remote``'s address if given."""
        protocol = protocol if protocol is not None else RecordingDatagramProtocol()
        local = None if name is None else self.bench.unix_path(name)
        peer = None if remote is None else remote.address
        opening = self.bench.open_unix_datagram(lambda: protocol, local, peer)
        return self._opened(opening, protocol, f"open_unix_datagram({local!r}, {peer!r})")

    def _opened(self, opening: Any, protocol: RecordingDatagramProtocol, what: str) -> Endpoint:
        self.wait(opening.done, f"{what} to finish")
        transport = opening.result()
        endpoint = Endpoint(protocol, transport)
        self.endpoints.append(endpoint)
        expect(protocol.made, f"{what}'s future resolved before connection_made")
        return endpoint

    # ------------------------------------------------------------ waiting

    def wait(self, condition: Callable[[], bool], what: str, *, timeout: float = TIMEOUT) -> None:
        """Run until ``condition()`` holds; fail saying ``what`` never happened."""
        if not self.bench.run_until(condition, timeout):
            raise CheckFailure(f"{what}: still not so after {timeout:g} s")

    def run_a_while(self, seconds: float = A_WHILE) -> None:
        """Let the loop run ``seconds`` (less on a fake clock with nothing to do)."""
        self.bench.run_until(lambda: False, seconds)

    def received(self, endpoint: Endpoint, count: int, what: str) -> list[tuple[bytes, Any]]:
        """Wait until ``endpoint`` has received ``count`` datagrams; return them all."""
        self.wait(lambda: len(endpoint.protocol.datagrams) >= count, f"{count} datagram(s) at {what}")
        return endpoint.protocol.datagrams

    # ------------------------------------------------------------- ending

    def __enter__(self) -> DatagramSession:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, traceback: TracebackType | None
    ) -> None:
        """End every endpoint; a failure to end them fails a check that had passed."""
        try:
            self.end()
        except Exception:
            if exc is None:
                raise

    def end(self) -> None:
        """Abort what is still open, run until every protocol has had connection_lost, close the bench."""
        try:
            for endpoint in self.endpoints:
                if not endpoint.protocol.lost:
                    endpoint.transport.abort()
            ended = self.bench.run_until(lambda: all(e.protocol.lost for e in self.endpoints), TIMEOUT)
            expect(ended, "after abort(), connection_lost never came to every endpoint")
        finally:
            self.bench.close()
