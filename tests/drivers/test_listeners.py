"""Every driver's listener reports the same about its sockets, before and after it closes.

The drivers' listeners share this part (``drivers/_core/listeners.py``):
``addresses``, ``port`` and ``closed``, and closing the sockets (a UNIX
socket's file removed).  These tests hold each driver to it.
"""

from __future__ import annotations

import os
import tempfile
from typing import Any

import pytest

from weft.drivers import TCPRuntime, UNIXRuntime
from weft.protocols import EchoProtocol


@pytest.mark.drivers(requires={TCPRuntime})
def test_a_closed_listener_still_says_where_it_listened(runtime: Any) -> None:
    """``addresses`` and ``port`` are the same after ``close()`` as before
    (a closed socket no longer knows its name: they are kept), ``closed``
    turns true, and a second ``close()`` changes nothing."""
    listener = runtime.listen_tcp(EchoProtocol, "127.0.0.1", 0)
    addresses, port = listener.addresses, listener.port
    assert addresses == [("127.0.0.1", port)]
    assert not listener.closed
    listener.close()
    assert listener.closed
    assert listener.addresses == addresses
    assert listener.port == port
    listener.close()
    assert listener.closed


@pytest.mark.drivers(requires={UNIXRuntime})
def test_a_unix_listener_removes_its_socket_file_when_it_closes(runtime: Any) -> None:
    """The socket file a UNIX listener made is gone once it closes, and its
    address is still its path."""
    with tempfile.TemporaryDirectory() as directory:
        path = os.path.join(directory, "listening")
        listener = runtime.listen_unix(EchoProtocol, path)
        assert os.path.exists(path)
        listener.close()
        assert not os.path.exists(path)
        assert listener.addresses == [path]
