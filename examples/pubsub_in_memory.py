"""The pub/sub server and client, wired together in memory.

Two clients share one hub.  Each is connected to its own server protocol
through a pump that moves bytes when told, so the order of events is exactly
what the script says.

Run: python examples/pubsub_in_memory.py
"""

from weft.drivers.testing import connect_pair
from weft.protocols.pubsub import PubSubClientProtocol, PubSubHub, PubSubServerProtocol

hub = PubSubHub()
alice = PubSubClientProtocol(on_message=lambda topic, message: print("alice got", topic, message))
bob = PubSubClientProtocol(on_reply=lambda command, reply: print("bob's", command, "->", reply))
alice_link = connect_pair(alice, PubSubServerProtocol(hub))
bob_link = connect_pair(bob, PubSubServerProtocol(hub))

alice.subscribe(b"news")
alice_link.run()
bob.publish(b"news", b"weft 0.1 is out")
bob.publish(b"weather", b"nobody listens")
bob_link.run()
alice_link.run()
