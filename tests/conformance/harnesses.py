"""The harnesses the test suite runs the shipped conformance suite on.

Every weft driver goes through :class:`~weft.drivers.testing.conformance.RuntimeHarness`
(one class for all of them) over each of its carriers; the memory driver
through :class:`~weft.drivers.testing.conformance.MemoryHarness`; TLS
through :class:`TLSHarness` over an explicit list of carriers; and
asyncio's and uvloop's own transports, with no weft code between loop and
protocol, through :class:`~weft.drivers.testing.conformance.AsyncioLoopHarness`.
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.support import TIMEOUT
from tests.support.drivers import driver_names
from tests.support.tls import tls_client, tls_server
from weft.drivers import DRIVERS
from weft.drivers.testing.conformance import (
    CARRIERS,
    AsyncioLoopHarness,
    ConnectedPair,
    MemoryHarness,
    RuntimeHarness,
    TransportHarness,
)
from weft.protocols.tls import TLSProtocol

#: How long the TLS handshake may take, in the carrier's seconds.


def conformance_drivers() -> list[str]:
    """The drivers the suite runs on: every driver in the registry (the one in
    tests/support: a new driver is one entry in ``weft.drivers.DRIVERS``), then
    the memory driver."""
    return [*driver_names(), "memory"]


#: What TLS runs over in the suite, by harness name: every driver at least
#: once, and each kind of carrier (a socket, two pipes, a socketpair).
TLS_CARRIERS = (
    "memory",
    "reactor-tcp",
    "reactor-pipes",
    "reactor-socketpair",
    "asyncio-tcp",
    "asyncio-pipes",
    "uvloop-tcp",
    "coroutine-tcp",
    "completion-tcp",
    "completion-unix",
    "completion-pipes",
    "completion-socketpair",
    "blocking-tcp",
    "twisted-tcp",
    "twisted-pipes",
    "trio-tcp",
    "trio-pipes",
)

#: asyncio-compatible loops whose own transports run the suite: the reference
#: the asyncio contract is taken from.
OWN_TRANSPORT_LOOPS = ("asyncio", "uvloop")


def weft_harness_names() -> list[str]:
    """Every weft transport under test: each driver over each carrier, then TLS over its carriers."""
    names = []
    for driver in conformance_drivers():
        names.extend(["memory"] if driver == "memory" else [f"{driver}-{carrier}" for carrier in CARRIERS])
    return names + [f"tls-over-{carrier}" for carrier in TLS_CARRIERS]


def own_transport_harness_names() -> list[str]:
    """asyncio's and uvloop's own transports, over TCP and UNIX-domain sockets."""
    return [
        f"{loop}-own-{carrier}" for loop in OWN_TRANSPORT_LOOPS for carrier in AsyncioLoopHarness.CARRIERS
    ]


def make_harness(name: str) -> TransportHarness:
    """The harness called ``name``; skips (saying what to install) when its driver cannot run here."""
    if name == "memory":
        return MemoryHarness()
    if name.startswith("tls-over-"):
        return TLSHarness(make_harness(name.removeprefix("tls-over-")))
    driver, _, carrier = name.partition("-")
    _skip_unless_available(driver)
    if carrier.startswith("own-"):
        return AsyncioLoopHarness(_loop_factory(driver), carrier.removeprefix("own-"), name=name)
    return RuntimeHarness(driver, carrier)


def _skip_unless_available(driver: str) -> None:
    info = DRIVERS[driver]
    if not info.available():
        pytest.skip(f"{driver} is not installed here (pip install 'weft[{info.extra}]')")


def _loop_factory(loop: str) -> Any:
    if loop == "uvloop":
        import uvloop

        return uvloop.new_event_loop
    import asyncio

    return asyncio.new_event_loop


class TLSHarness:
    """TLS sessions (real handshakes, trustme certificates) over another harness's transports.

    The suite's protocols are the applications; each sits behind a
    ``TLSProtocol`` that the carrier connects.  The applications hear
    ``connection_made`` at once, and the checks begin while the handshake
    is still under way, as an application's first writes do.
    """

    def __init__(self, carrier: TransportHarness) -> None:
        self.carrier = carrier
        self.name = f"tls-over-{carrier.name}"

    def connect(self, client: Any, server: Any) -> ConnectedPair:
        """Wrap both in TLS, connect the layers through the carrier, run until the session is up.

        Up: both handshakes complete and the records they sent (session
        tickets) taken by the carrier, so each check begins on an
        established, quiet session.  Or until an application has paused
        reading (a check pauses in connection_made, which TLS calls at
        once): the handshake goes on without waiting for it, and the check
        itself decides what to wait for.
        """
        layers = (tls_client(client), tls_server(server))
        pair = self.carrier.connect(*layers)
        if not pair.run_until(lambda: all(map(_up, layers)) or any(map(_app_paused, layers)), TIMEOUT):
            for layer in layers:
                layer.app_transport.abort()
            pair.run_until(lambda: all(layer.app_transport.is_closing() for layer in layers), TIMEOUT)
            pair.close()
            raise TimeoutError(
                f"the TLS handshake over {self.carrier.name} did not complete in {TIMEOUT:g} s"
            )
        return pair


def _up(layer: TLSProtocol) -> bool:
    return layer.handshake_complete and layer.get_write_buffer_size() == 0


def _app_paused(layer: TLSProtocol) -> bool:
    return not layer.app_transport.is_reading()
