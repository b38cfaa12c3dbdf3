r"""An echo server over TLS: the echo protocol behind weft's TLS layer.

Run: python examples/tls_echo_server.py CERT KEY [DRIVER [PORT]]
     (CERT, KEY: PEM files; DRIVER: reactor, the default, or any driver
     `weft drivers` lists; PORT: 8443 unless given, 0 for a free one.)
A certificate to try it with, valid for "localhost" for 30 days:
     openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
         -keyout key.pem -out cert.pem -subj /CN=localhost \
         -addext subjectAltName=DNS:localhost -days 30
Try: printf 'hello\n' | weft connect 127.0.0.1 8443 --tls --cafile cert.pem --server-name localhost
"""

import sys

from weft.drivers import serve
from weft.protocols import EchoProtocol
from weft.protocols.tls import TLSProtocol, server_context

context = server_context(sys.argv[1], sys.argv[2])
driver = sys.argv[3] if len(sys.argv) > 3 else "reactor"
port = int(sys.argv[4]) if len(sys.argv) > 4 else 8443
serve(lambda: TLSProtocol(EchoProtocol(), context, server_side=True), port=port, driver=driver)
