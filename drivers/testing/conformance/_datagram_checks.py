"""The datagram checks: any driver's datagram endpoints held to the contract.

Each check is named for what it checks, and in one of the suite's groups:
what asyncio's datagram transports do (datagrams both ways, connected or
not, over IPv4, IPv6 and UNIX sockets; ``close()`` that sends what was
sent first; ``abort()``; ICMP's "port unreachable" reaching
``error_received`` without ending the endpoint), and what weft promises
beyond (its errors for a bad address or an oversized datagram, raised at
the call and leaving the endpoint open; datagrams after ``close()``
discarded; empty datagrams sent; a clock; a callback's exception ending
that endpoint).  :func:`check_datagrams` runs them all on a
:class:`~weft.drivers.testing.conformance.DatagramHarness` and raises
:class:`~weft.drivers.testing.conformance.ConformanceError` naming each
failure.
"""

from __future__ import annotations

import errno
import inspect
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from functools import partial
from typing import Any

from weft.drivers._core.datagrams import MAX_UDP_IPV4
from weft.drivers.testing._recording import RecordingDatagramProtocol
from weft.drivers.testing.conformance._checking import Group
from weft.drivers.testing.conformance._datagram_harness import DatagramHarness
from weft.drivers.testing.conformance._datagram_session import DatagramSession
from weft.drivers.testing.conformance._expectations import expect, expect_equal, expect_raises
from weft.drivers.testing.conformance._report import ConformanceError, Report, run_check
from weft.protocols.contract import Clock
from weft.protocols.errors import ArgumentError, DatagramAddressError, DatagramTooLargeError

__all__ = ["DATAGRAM_CHECKS", "DatagramCheck", "check_datagrams", "run_datagram_checks"]


@dataclass(frozen=True)
class DatagramCheck:
    """One datagram check: a name that says what it checks, its group, its code.

    Calling it runs it once against a harness, on a bench of its own
    (endpoints ended, bench closed afterwards), as a stream
    :class:`~weft.drivers.testing.conformance.Check` does.
    """

    name: str
    group: Group
    function: Callable[[DatagramSession], None]

    @property
    def description(self) -> str:
        """What the check proves, from its docstring."""
        return inspect.cleandoc(self.function.__doc__ or self.name)

    def __call__(self, harness: DatagramHarness) -> None:
        """Run the check on ``harness``."""
        with DatagramSession(harness) as session:
            self.function(session)

    def __repr__(self) -> str:
        return f"<DatagramCheck {self.name} ({self.group.value})>"


# ---------------------------------------------------------- both ways


def datagrams_go_both_ways_between_unconnected_endpoints(session: DatagramSession) -> None:
    """A datagram sent to an unconnected endpoint's address arrives whole, with
    the sender's address, and the answer sent to that address arrives back."""
    server, client = session.udp(), session.udp()
    client.transport.sendto(b"ping", server.address)
    [(data, source)] = session.received(server, 1, "the server")
    expect_equal(data, b"ping", "the datagram the server got")
    expect_equal(source, client.address, "where the server's datagram came from")
    server.transport.sendto(b"pong", source)
    expect_equal(session.received(client, 1, "the client"), [(b"pong", server.address)], "the answer")


def a_connected_endpoint_sends_to_its_peer_without_an_address(session: DatagramSession) -> None:
    """An endpoint opened with a remote address sends there with sendto(data),
    names its peer in get_extra_info("peername"), and hears its answers."""
    server = session.udp()
    client = session.udp(None, server.address)
    expect_equal(client.transport.get_extra_info("peername"), server.address, "the client's peername")
    client.transport.sendto(b"one")
    [(data, source)] = session.received(server, 1, "the server")
    expect_equal(data, b"one", "the datagram the server got")
    server.transport.sendto(b"two", source)
    expect_equal(session.received(client, 1, "the client"), [(b"two", server.address)], "the answer")


def a_connected_endpoint_hears_only_its_peer(session: DatagramSession) -> None:
    """A connected endpoint gets nothing from addresses other than its peer's
    (the kernel filters them), and its peer's datagrams still."""
    peer, stranger = session.udp(), session.udp()
    endpoint = session.udp(None, peer.address)
    stranger.transport.sendto(b"from a stranger", endpoint.address)
    peer.transport.sendto(b"from the peer", endpoint.address)
    session.received(endpoint, 1, "the connected endpoint")
    session.run_a_while()
    expect_equal(endpoint.protocol.payloads, [b"from the peer"], "what the connected endpoint heard")


def datagrams_go_both_ways_over_ipv6(session: DatagramSession) -> None:
    """Over IPv6 loopback too, connected and not, addresses as the kernel
    reports them (four-tuples); steps aside where there is no IPv6."""
    server = session.udp6()
    client = session.udp6(server.address[:2])
    client.transport.sendto(b"six")
    [(data, source)] = session.received(server, 1, "the IPv6 server")
    expect_equal(data, b"six", "the datagram over IPv6")
    expect_equal(source[:2], client.address[:2], "the IPv6 sender's address")
    server.transport.sendto(b"back", source)
    expect_equal(session.received(client, 1, "the IPv6 client")[0][0], b"back", "the answer over IPv6")


def unix_datagrams_go_both_ways(session: DatagramSession) -> None:
    """Between UNIX datagram sockets: a connected one sends to its peer's path,
    which hears the sender's path and answers there."""
    server = session.unix("server")
    client = session.unix("client", server)
    client.transport.sendto(b"local")
    [(data, source)] = session.received(server, 1, "the UNIX server")
    expect_equal((data, source), (b"local", client.address), "the datagram and its sender's path")
    server.transport.sendto(b"answer", source)
    expect_equal(session.received(client, 1, "the UNIX client"), [(b"answer", server.address)], "the answer")


# -------------------------------------------------------------- ending


def close_sends_what_was_sent_before_it_then_ends_cleanly(session: DatagramSession) -> None:
    """Every datagram sent before close() arrives, in order on loopback; then
    connection_lost(None), never from inside close()."""
    server = session.udp()
    client = session.udp(None, server.address)
    sent = [b"datagram %d" % index for index in range(10)]
    for data in sent:
        client.transport.sendto(data)
    client.transport.close()
    expect(client.transport.is_closing(), "is_closing() is false after close()")
    expect(not client.protocol.lost, "connection_lost came from inside close()")
    session.received(server, len(sent), "the server")
    expect_equal(server.protocol.payloads, sent, "what the server got")
    session.wait(lambda: client.protocol.lost, "connection_lost after close()")
    expect_equal(client.protocol.lost_exc, None, "connection_lost's exception after close()")


def abort_ends_at_once_and_sends_nothing_after(session: DatagramSession) -> None:
    """abort() makes is_closing() true at once, connection_lost(None) follows
    (never from inside the call), and datagrams sent afterwards go nowhere."""
    server = session.udp()
    client = session.udp(None, server.address)
    client.transport.abort()
    expect(client.transport.is_closing(), "is_closing() is false after abort()")
    expect(not client.protocol.lost, "connection_lost came from inside abort()")
    client.transport.sendto(b"after the abort")
    session.wait(lambda: client.protocol.lost, "connection_lost after abort()")
    expect_equal(client.protocol.lost_exc, None, "connection_lost's exception after abort()")
    session.run_a_while()
    expect_equal(server.protocol.payloads, [], "what the server got")


def close_and_abort_are_harmless_when_repeated(session: DatagramSession) -> None:
    """close() twice, and abort() after close(), change nothing: one connection_lost."""
    endpoint = session.udp()
    endpoint.transport.close()
    endpoint.transport.close()
    endpoint.transport.abort()
    session.wait(lambda: endpoint.protocol.lost, "connection_lost after close()")
    session.run_a_while()
    expect_equal(endpoint.protocol.count("connection_lost"), 1, "connection_lost calls")


def sendto_after_close_is_discarded(session: DatagramSession) -> None:
    """A datagram sent after close() is dropped without an error, even one that
    would be refused (no address on an unconnected endpoint)."""
    server, client = session.udp(), session.udp()
    client.transport.sendto(b"before", server.address)
    client.transport.close()
    client.transport.sendto(b"after", server.address)
    client.transport.sendto(b"no address at all")
    session.wait(lambda: client.protocol.lost, "connection_lost after close()")
    session.received(server, 1, "the server")
    session.run_a_while()
    expect_equal(server.protocol.payloads, [b"before"], "what the server got")


# ------------------------------------------------------------- errors


def a_connected_endpoint_hears_connection_refused_and_goes_on(session: DatagramSession) -> None:
    """Sending to a port nobody holds any more brings ConnectionRefusedError to
    error_received (ICMP's port unreachable, on a connected endpoint), and
    the endpoint stays open: it still sends, and closes cleanly."""
    gone = session.udp()
    address = gone.address
    gone.transport.abort()
    session.wait(lambda: gone.protocol.lost, "the first endpoint's end")
    client = session.udp(None, address)
    for _ in range(20):  # the ICMP answer may be slow, or rate-limited by the kernel
        client.transport.sendto(b"anyone there?")
        if session.bench.run_until(lambda: bool(client.protocol.errors), 0.5):
            break
    errors = client.protocol.errors
    expect(errors, "no error_received after sending to a closed port")
    expect(isinstance(errors[0], ConnectionRefusedError), f"error_received got {errors[0]!r}")
    expect(not client.transport.is_closing(), "the endpoint is closing after error_received")
    expect(not client.protocol.lost, "the endpoint ended after error_received")
    client.transport.sendto(b"still sending")
    client.transport.close()
    session.wait(lambda: client.protocol.lost, "connection_lost after close()")
    expect_equal(client.protocol.lost_exc, None, "connection_lost's exception")


def an_oversized_datagram_is_refused_at_the_call(session: DatagramSession) -> None:
    """A UDP datagram over 65,507 bytes (IPv4) raises DatagramTooLargeError (an
    OSError with errno EMSGSIZE) from sendto; one of exactly 65,507 arrives."""
    server, client = session.udp(), session.udp()
    error = expect_raises(
        DatagramTooLargeError,
        lambda: client.transport.sendto(b"x" * (MAX_UDP_IPV4 + 1), server.address),
        "sendto() of 65,508 bytes",
    )
    expect(isinstance(error, OSError) and error.errno == errno.EMSGSIZE, f"{error!r} is no OSError(EMSGSIZE)")
    expect_equal((error.size, error.limit), (MAX_UDP_IPV4 + 1, MAX_UDP_IPV4), "its size and limit")
    largest = bytes(range(256)) * (MAX_UDP_IPV4 // 256) + b"y" * (MAX_UDP_IPV4 % 256)
    client.transport.sendto(largest, server.address)
    [(data, _)] = session.received(server, 1, "the server")
    expect_equal(data, largest, "the largest datagram")
    expect(not client.transport.is_closing(), "the endpoint is closing after the refusal")


def sendto_without_an_address_on_an_unconnected_endpoint_is_refused(session: DatagramSession) -> None:
    """sendto(data) on an endpoint with no peer raises DatagramAddressError (a
    ValueError and a TypeError too); the endpoint goes on."""
    server, client = session.udp(), session.udp()
    error = expect_raises(
        DatagramAddressError, lambda: client.transport.sendto(b"where?"), "sendto() without address"
    )
    expect(isinstance(error, ValueError) and isinstance(error, TypeError), f"{error!r} is not both")
    client.transport.sendto(b"here", server.address)
    expect_equal(session.received(server, 1, "the server")[0][0], b"here", "the datagram after the refusal")


def sendto_elsewhere_on_a_connected_endpoint_is_refused(session: DatagramSession) -> None:
    """A connected endpoint refuses an address other than its peer's with
    DatagramAddressError, and takes its peer's own address."""
    server, other = session.udp(), session.udp()
    client = session.udp(None, server.address)
    expect_raises(
        DatagramAddressError,
        lambda: client.transport.sendto(b"elsewhere", other.address),
        "sendto() to another address on a connected endpoint",
    )
    client.transport.sendto(b"to the peer, named", server.address)
    expect_equal(session.received(server, 1, "the server")[0][0], b"to the peer, named", "the datagram")
    session.run_a_while()
    expect_equal(other.protocol.payloads, [], "what the other endpoint got")


def sendto_refuses_addresses_it_would_have_to_look_up_or_cannot_use(session: DatagramSession) -> None:
    """On an unconnected IPv4 endpoint, a host name (a blocking lookup), an
    IPv6 address, a string, a port that is not an int: each raises
    DatagramAddressError at the call, and the endpoint goes on."""
    server, client = session.udp(), session.udp()
    port = server.address[1]
    bad_addresses: list[Any] = [("localhost", port), ("::1", port), "127.0.0.1", ("127.0.0.1", str(port))]
    for bad in bad_addresses:
        expect_raises(DatagramAddressError, partial(client.transport.sendto, b"?", bad), f"sendto to {bad!r}")
    client.transport.sendto(b"fine", server.address)
    expect_equal(session.received(server, 1, "the server")[0][0], b"fine", "the datagram after the refusals")


def data_must_be_bytes_like_and_is_copied(session: DatagramSession) -> None:
    """sendto of a str raises TypeError; a bytearray is copied at the call, so
    changing it afterwards does not change the datagram."""
    server, client = session.udp(), session.udp()
    expect_raises(TypeError, lambda: client.transport.sendto("text", server.address), "sendto() of a str")  # type: ignore[arg-type]
    buffer = bytearray(b"original")
    client.transport.sendto(buffer, server.address)
    client.transport.sendto(memoryview(b"a view"), server.address)
    buffer[:] = b"changed!"
    session.received(server, 2, "the server")
    expect_equal(server.protocol.payloads, [b"original", b"a view"], "what the server got")


def an_empty_datagram_is_sent_and_received(session: DatagramSession) -> None:
    """sendto(b"") sends an empty datagram (asyncio before 3.13 drops it), and
    the receiver gets b"" from the sender's address."""
    server = session.udp()
    client = session.udp(None, server.address)
    client.transport.sendto(b"")
    expect_equal(session.received(server, 1, "the server"), [(b"", client.address)], "the empty datagram")


def an_exception_from_datagram_received_ends_that_endpoint_with_it(session: DatagramSession) -> None:
    """A protocol whose datagram_received raises has its endpoint ended, with
    connection_lost(that exception); the driver reports it; the sender goes on."""
    failure = RuntimeError("a bug in datagram_received")

    class Failing(RecordingDatagramProtocol):
        def datagram_received(self, data: bytes, addr: Any) -> None:
            super().datagram_received(data, addr)
            raise failure

    server = session.udp(protocol=Failing())
    client = session.udp(None, server.address)
    client.transport.sendto(b"boom")
    session.wait(lambda: server.protocol.lost, "connection_lost at the failing endpoint")
    expect(server.protocol.lost_exc is failure, f"connection_lost got {server.protocol.lost_exc!r}")
    expect(
        any(error is failure for error in session.bench.callback_errors),
        "the driver did not report the exception",
    )
    expect(not client.transport.is_closing(), "the sender is closing too")


# --------------------------------------------------- names, time, limits


def every_endpoint_offers_a_clock_and_its_names(session: DatagramSession) -> None:
    """get_extra_info: a Clock; "sockname" the address bound (its free port
    filled in); "peername" the peer of a connected endpoint and None otherwise."""
    server = session.udp()
    client = session.udp(None, server.address)
    for name, endpoint in (("server", server), ("client", client)):
        clock = endpoint.transport.get_extra_info("clock")
        expect(isinstance(clock, Clock), f"the {name}'s get_extra_info('clock') is {clock!r}")
        address = endpoint.address
        expect(isinstance(address, tuple) and address[1] != 0, f"the {name}'s sockname is {address!r}")
    expect_equal(server.address[0], "127.0.0.1", "the server's host")
    expect_equal(server.transport.get_extra_info("peername"), None, "an unconnected endpoint's peername")
    expect_equal(
        client.transport.get_extra_info("peername"), server.address, "a connected endpoint's peername"
    )
    expect_equal(server.transport.get_extra_info("no such name", "default"), "default", "an unknown name")
    ran: list[str] = []
    clock = client.transport.get_extra_info("clock")
    clock.call_later(0.01, ran.append, "ran")
    session.wait(lambda: ran == ["ran"], "the clock's call")


def write_buffer_limits_follow_asyncios_rules(session: DatagramSession) -> None:
    """set_write_buffer_limits takes asyncio's defaults and refuses high < low
    with ArgumentError; get_write_buffer_limits is (low, high); nothing is
    buffered on an idle endpoint."""
    endpoint = session.udp()
    transport = endpoint.transport
    expect_equal(transport.get_write_buffer_size(), 0, "an idle endpoint's buffer")
    transport.set_write_buffer_limits(high=4096)
    expect_equal(transport.get_write_buffer_limits(), (1024, 4096), "the limits after high=4096")
    expect_raises(ArgumentError, lambda: transport.set_write_buffer_limits(high=10, low=20), "high < low")


def _checks(group: Group, *functions: Callable[[DatagramSession], None]) -> tuple[DatagramCheck, ...]:
    return tuple(DatagramCheck(function.__name__, group, function) for function in functions)


#: Every datagram check: asyncio's contract, then weft's promises.
DATAGRAM_CHECKS: tuple[DatagramCheck, ...] = _checks(
    Group.ASYNCIO_CONTRACT,
    datagrams_go_both_ways_between_unconnected_endpoints,
    a_connected_endpoint_sends_to_its_peer_without_an_address,
    a_connected_endpoint_hears_only_its_peer,
    datagrams_go_both_ways_over_ipv6,
    unix_datagrams_go_both_ways,
    close_sends_what_was_sent_before_it_then_ends_cleanly,
    abort_ends_at_once_and_sends_nothing_after,
    close_and_abort_are_harmless_when_repeated,
    a_connected_endpoint_hears_connection_refused_and_goes_on,
) + _checks(
    Group.WEFT_PROMISE,
    sendto_after_close_is_discarded,
    an_oversized_datagram_is_refused_at_the_call,
    sendto_without_an_address_on_an_unconnected_endpoint_is_refused,
    sendto_elsewhere_on_a_connected_endpoint_is_refused,
    sendto_refuses_addresses_it_would_have_to_look_up_or_cannot_use,
    data_must_be_bytes_like_and_is_copied,
    an_empty_datagram_is_sent_and_received,
    an_exception_from_datagram_received_ends_that_endpoint_with_it,
    every_endpoint_offers_a_clock_and_its_names,
    write_buffer_limits_follow_asyncios_rules,
)


def run_datagram_checks(
    harness: DatagramHarness, checks: Iterable[DatagramCheck] = DATAGRAM_CHECKS
) -> Report:
    """Run ``checks`` on ``harness``, each on a bench of its own; report every outcome."""
    outcomes = tuple(run_check(check, harness) for check in checks)
    return Report(str(getattr(harness, "name", None) or type(harness).__name__), outcomes)


def check_datagrams(harness: DatagramHarness) -> Report:
    """Run every datagram check: what a weft driver's datagram endpoints must pass.

    Returns the report when none failed; raises :class:`ConformanceError`
    naming every check that did.
    """
    report = run_datagram_checks(harness)
    if report.failed:
        raise ConformanceError(report)
    return report
