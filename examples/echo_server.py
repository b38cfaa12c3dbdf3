r"""An echo server: every byte a client sends comes back.

Run: python examples/echo_server.py [DRIVER [PORT]]
     (DRIVER: reactor, the default, or any driver `weft drivers` lists;
     PORT: 8000 unless given, 0 for a free one.)
Try: printf 'hello\n' | weft connect 127.0.0.1 8000
Stop it with Ctrl-C: it lets open connections finish, then exits.
"""

import sys

from weft.drivers import serve
from weft.protocols import EchoProtocol

driver = sys.argv[1] if len(sys.argv) > 1 else "reactor"
port = int(sys.argv[2]) if len(sys.argv) > 2 else 8000
serve(EchoProtocol, port=port, driver=driver)
