"""Frame parsers need no transport: bytes in, frames out.

Run: python examples/parse_lines.py
"""

from weft.protocols.errors import LineTooLongError
from weft.protocols.framing import LineParser, NetstringParser, encode_netstring

lines = LineParser(delimiter=b"\r\n", max_length=20)
for chunk in (b"HELO exa", b"mple.org\r", b"\nQUIT\r\n", b"an unfinished li"):
    lines.feed(chunk)
    for line in lines.frames():
        print("line:", line.decode())
print("still buffered:", lines.take_buffer())

lines.feed(b"a line far longer than twenty bytes\r\n")
try:
    lines.next_frame()
except LineTooLongError as error:
    print("refused:", error)

netstrings = NetstringParser()
netstrings.feed(encode_netstring(b"hello") + encode_netstring(b"") + b"3:ab")
print("netstrings:", list(netstrings.frames()))
