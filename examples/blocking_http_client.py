"""An HTTP/1.1 client in a plain script: two requests on one kept-alive connection.

It first starts weft's hello server on a free loopback port, on the
blocking driver in a background thread; point the client at any host
instead.  Each wait has a timeout.

Run: python examples/blocking_http_client.py
"""

import threading

from weft.drivers.blocking import BlockingRuntime, connect_tcp
from weft.protocols.http import (
    ClientResponse,
    HTTPClientProtocol,
    HTTPServerProtocol,
    Request,
    ResponseWriter,
)


def hello(request: Request, response: ResponseWriter) -> None:
    response.send(200, {"content-type": "text/plain"}, f"hello, {request.path.strip('/')}\n".encode())


server = BlockingRuntime()
listener = server.listen_tcp(lambda: HTTPServerProtocol(hello), "127.0.0.1", 0)
threading.Thread(target=server.run, daemon=True).start()

answers: list[str] = []


def done(response: ClientResponse, body: bytes) -> None:
    answers.append(f"{response.status} {body.decode().strip()}")


def failed(exc: Exception) -> None:
    answers.append(f"failed: {exc}")


with connect_tcp(HTTPClientProtocol(host="127.0.0.1"), "127.0.0.1", listener.port, timeout=5) as conn:
    for path in ("/threads", "/again"):
        conn.protocol.fetch("GET", path, on_complete=done, on_error=failed)
    conn.wait_for(lambda: len(answers) == 2, timeout=5)
    conn.protocol.close()
print("answers:", "; ".join(answers))

server.call_soon_threadsafe(server.stop)
