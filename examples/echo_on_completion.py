"""weft's echo protocol on Linux's io_uring, TLS included: completion I/O, the same protocols.

The completion driver submits operations (a multishot accept, one receive
kept armed per connection, one send in flight) and acts on their
completions; the TLS layer is weft's memory-BIO protocol, which never sees
how the bytes move.  Where io_uring is refused (an old kernel,
``kernel.io_uring_disabled``, a container's seccomp profile) the script
says why and runs on ``auto``'s pick, the reactor, instead.

Run: python examples/echo_on_completion.py
(needs the test extra for its throwaway certificate: pip install 'weft[dev]')
"""

import ssl

import trustme

from weft.drivers import DRIVERS, open_runtime
from weft.drivers.testing import RecordingProtocol
from weft.protocols import EchoProtocol
from weft.protocols.tls import TLSProtocol

# A throwaway certificate authority, and a server certificate it signs.
authority = trustme.CA()
server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
authority.issue_cert("localhost").configure_cert(server_context)
client_context = ssl.create_default_context()
authority.configure_trust(client_context)

reason = DRIVERS["completion"].unavailable_reason()
if reason is not None:
    print(reason)
runtime = open_runtime("completion" if reason is None else "auto")
print("driver:", "completion" if reason is None else "reactor")

plain = runtime.listen_tcp(EchoProtocol, "127.0.0.1", 0)
def tls_echo() -> TLSProtocol:
    return TLSProtocol(EchoProtocol(), server_context, server_side=True)


secure = runtime.listen_tcp(tls_echo, "127.0.0.1", 0)

client = RecordingProtocol()
connecting = runtime.connect_tcp(lambda: client, "127.0.0.1", plain.addresses[0][1])
runtime.run_until(connecting.done, 10)
client.transport.write(b"hello, io_uring")
runtime.run_until(lambda: client.received == b"hello, io_uring", 10)
print("echoed:", client.received.decode())

inner = RecordingProtocol()
tls_client = TLSProtocol(inner, client_context, server_side=False, server_hostname="localhost")
connecting = runtime.connect_tcp(lambda: tls_client, "127.0.0.1", secure.addresses[0][1])
runtime.run_until(connecting.done, 10)
inner.transport.write(b"hello over TLS")
runtime.run_until(lambda: inner.received == b"hello over TLS", 10)
print("echoed over TLS:", inner.received.decode())

plain.close()
secure.close()
runtime.close()
