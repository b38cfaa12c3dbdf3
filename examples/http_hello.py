"""A hello-world HTTP/1.1 server: GET /weft answers "hello, weft".

Keep-alive, pipelining, chunked bodies, limits and timeouts come with
weft's HTTPServerProtocol (see docs/http.md); this file is only the handler.

Run: python examples/http_hello.py [DRIVER [PORT]]
     (DRIVER: reactor, the default, or any driver `weft drivers` lists;
     PORT: 8000 unless given, 0 for a free one.)
Try: curl http://127.0.0.1:8000/weft
"""

import sys

from weft.drivers import serve
from weft.protocols.http import HTTPServerProtocol, Request, ResponseWriter


def hello(request: Request, response: ResponseWriter) -> None:
    name = request.path.strip("/") or "world"
    response.send(200, {"content-type": "text/plain; charset=utf-8"}, f"hello, {name}\n".encode())


driver = sys.argv[1] if len(sys.argv) > 1 else "reactor"
port = int(sys.argv[2]) if len(sys.argv) > 2 else 8000
serve(lambda: HTTPServerProtocol(hello), port=port, driver=driver)
