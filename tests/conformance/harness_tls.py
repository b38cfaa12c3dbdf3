"""TLS in the conformance suite: the TLS layer's transport over other drivers' transports.

Each ``tls-over-<name>`` harness connects the suite's two protocols through
TLS sessions (real handshakes, trustme certificates) carried by the
``<name>`` harness: memory, the reactor over TCP, pipes and a socketpair,
and asyncio over TCP and pipes.  The suite then checks the TLS transport
against the same contract as every other transport.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from tests.conformance.harness import HARNESSES as INNER
from tests.conformance.harness import ConnectedPair, DriverHarness, End
from tests.tls_support import tls_client, tls_server
from weft.protocols.tls import TLSProtocol

#: The carriers TLS runs over in the suite.
CARRIERS = (
    "memory",
    "reactor-tcp",
    "reactor-pipes",
    "reactor-pipes-socketpair",
    "asyncio-tcp",
    "asyncio-pipes",
    "coroutine-tcp",
)


class TLSPair:
    """Two application protocols, each behind a TLS layer, over an inner pair."""

    def __init__(self, inner: ConnectedPair, client: Any, server: Any) -> None:
        self.inner = inner
        self.client = client
        self.server = server
        self.callback_errors = inner.callback_errors

    def run_until(self, condition: Callable[[], bool], *, timeout: float = 10.0) -> None:
        """The inner driver's run_until."""
        self.inner.run_until(condition, timeout=timeout)

    def reset_from(self, end: End) -> None:
        """Reset the carrying connection under ``end``'s TLS layer."""
        self.inner.reset_from(end)


class TLSHarness:
    """TLS over the ``carrier`` harness."""

    def __init__(self, carrier: str) -> None:
        self.name = f"tls-over-{carrier}"
        self.inner: DriverHarness = INNER[carrier]()

    def connect(self, client: Any, server: Any) -> TLSPair:
        """Wrap both in TLS, connect through the carrier, run until the handshake is done."""
        client_layer, server_layer = tls_client(client), tls_server(server)
        inner = self.inner.connect(client_layer, server_layer)
        pair = TLSPair(inner, client, server)
        pair.run_until(lambda: _up(client_layer) and _up(server_layer))
        return pair

    def close(self) -> None:
        """The carrier's close."""
        self.inner.close()


def _up(layer: TLSProtocol) -> bool:
    return layer.handshake_complete


HARNESSES: dict[str, Callable[[], DriverHarness]] = {
    f"tls-over-{carrier}": (lambda carrier=carrier: TLSHarness(carrier))  # type: ignore[misc]
    for carrier in CARRIERS
    if carrier in INNER
}
