"""A pub/sub client in a plain script: no event loop, no callbacks to wire up.

It first starts weft's pub/sub server on a free loopback port, on the
blocking driver in a background thread; point the client at any server
instead.  The client connects, subscribes, publishes, and waits (with a
timeout) for its own message to come back.

Run: python examples/blocking_pubsub_client.py
"""

import threading

from weft.drivers.blocking import BlockingRuntime, connect_tcp
from weft.protocols.pubsub import PubSubClientProtocol, PubSubHub, PubSubServerProtocol

hub = PubSubHub()
server = BlockingRuntime()
listener = server.listen_tcp(lambda: PubSubServerProtocol(hub), "127.0.0.1", 0)
threading.Thread(target=server.run, daemon=True).start()

messages: list[tuple[bytes, bytes]] = []
client = PubSubClientProtocol(on_message=lambda topic, message: messages.append((topic, message)))
with connect_tcp(client, "127.0.0.1", listener.port, timeout=5) as conn:
    client.subscribe(b"news")
    client.publish(b"news", b"weft on threads")
    topic, message = conn.wait_for(lambda: messages and messages[0], timeout=5)
    print("got", topic, message)

server.call_soon_threadsafe(server.stop)
