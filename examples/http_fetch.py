"""An HTTP/1.1 client: fetch two URLs over one kept-alive connection.

So that it runs anywhere, it first starts weft's own hello server on a free
loopback port, on the same driver; point the client at any host instead.

Run: python examples/http_fetch.py [DRIVER]
"""

import sys

from weft.drivers import open_runtime
from weft.protocols.http import (
    ClientResponse,
    HTTPClientProtocol,
    HTTPServerProtocol,
    Request,
    ResponseWriter,
)


def hello(request: Request, response: ResponseWriter) -> None:
    response.send(200, {"content-type": "text/plain"}, f"hello, {request.path.strip('/')}\n".encode())


runtime = open_runtime(sys.argv[1] if len(sys.argv) > 1 else "reactor")
listener = runtime.listen_tcp(lambda: HTTPServerProtocol(hello), "127.0.0.1", 0)
answers: list[str] = []


def done(response: ClientResponse, body: bytes) -> None:
    answers.append(f"{response.status} {body.decode().strip()}")


def failed(exc: Exception) -> None:
    answers.append(f"failed: {exc}")


client = HTTPClientProtocol(host="127.0.0.1")
for path in ("/weft", "/again"):  # both queued at once; sent one after the other
    client.fetch("GET", path, on_complete=done, on_error=failed)
runtime.connect_tcp(lambda: client, "127.0.0.1", listener.addresses[0][1])
runtime.run_until(lambda: len(answers) == 2, timeout=10)
print("answers:", "; ".join(answers))
client.close()
listener.close()
runtime.close()
