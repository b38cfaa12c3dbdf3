"""The rules every driver's sendto follows (drivers/_core/datagrams.py), one at a time."""

from __future__ import annotations

import errno
import socket
from pathlib import Path
from typing import Any

import pytest

from weft.drivers._core.datagrams import KNOWN_ADDRESSES, SendRules, datagram_error
from weft.protocols.errors import DatagramAddressError, DatagramTooLargeError

V4 = socket.AF_INET
V6 = socket.AF_INET6


def test_a_checked_address_is_remembered_but_never_one_merely_equal_to_it() -> None:
    """The second send to an address skips the check; a float port or a bool,
    equal to (and hashing like) an int, is still refused."""
    rules = SendRules(V4, None)
    assert rules.target(1, ("127.0.0.1", 53)) == ("127.0.0.1", 53)
    assert ("127.0.0.1", 53) in rules._known
    for impostor in (("127.0.0.1", 53.0), ("127.0.0.1", True)):
        with pytest.raises(DatagramAddressError):
            rules.target(1, impostor)


def test_the_table_of_known_addresses_is_bounded() -> None:
    """However many peers an endpoint sends to, it remembers at most KNOWN_ADDRESSES."""
    rules = SendRules(V4, None)
    for port in range(3 * KNOWN_ADDRESSES):
        rules.target(1, ("127.0.0.1", port))
    assert len(rules._known) <= KNOWN_ADDRESSES


@pytest.mark.parametrize(
    "bad", [("127.0.0.1", [53]), (["127.0.0.1"], 53), ("127.0.0.1", 70000), ("example.com", 53), "127.0.0.1"]
)
def test_what_is_no_ipv4_address_is_refused(bad: Any) -> None:
    """An unhashable part, a port out of range, a name, a string: DatagramAddressError."""
    with pytest.raises(DatagramAddressError):
        SendRules(V4, None).target(1, bad)


def test_an_ipv4_address_on_an_ipv6_endpoint_says_how_to_write_it() -> None:
    """The message names the mapped form."""
    with pytest.raises(DatagramAddressError, match="::ffff:"):
        SendRules(V6, None).target(1, ("127.0.0.1", 53))


def test_a_connected_endpoint_knows_its_peer_in_any_spelling() -> None:
    """The peer's address as a pair, as a four-tuple, or written another way, is the peer."""
    rules = SendRules(V6, ("::1", 53, 0, 0), connected=True)
    for same in (None, ("::1", 53), ("0:0:0:0:0:0:0:1", 53), ("::1", 53, 0, 0)):
        assert rules.target(1, same) is None
    with pytest.raises(DatagramAddressError, match="connected"):
        rules.target(1, ("::1", 54))


def test_unix_paths_and_path_likes() -> None:
    """A UNIX endpoint takes str, bytes and path-likes (as str); nothing else."""
    rules = SendRules(socket.AF_UNIX, None)
    assert rules.target(1, Path("/run/x")) == "/run/x"
    assert rules.target(1, b"\0abstract") == b"\0abstract"
    with pytest.raises(DatagramAddressError):
        rules.target(1, ("127.0.0.1", 53))


def test_the_size_limit_and_the_kernels_emsgsize() -> None:
    """Over the limit: DatagramTooLargeError with size and limit; the kernel's
    EMSGSIZE becomes one too, its cause kept; other errors pass unchanged."""
    with pytest.raises(DatagramTooLargeError) as raised:
        SendRules(V4, None, limit=100).target(101, ("127.0.0.1", 53))
    assert (raised.value.size, raised.value.limit, raised.value.errno) == (101, 100, errno.EMSGSIZE)
    kernel = OSError(errno.EMSGSIZE, "Message too long")
    converted = datagram_error(kernel, 5)
    assert isinstance(converted, DatagramTooLargeError)
    assert converted.__cause__ is kernel
    refused = ConnectionRefusedError(errno.ECONNREFUSED, "refused")
    assert datagram_error(refused, 5) is refused
