"""Framing: cutting a byte stream into frames (lines, length-prefixed, netstrings).

Each format has a pure parser (bytes in, frames out, no transport needed) and
a protocol base class built on it.
"""

from weft.protocols.framing._length_prefixed import (
    PREFIX_SIZES,
    LengthPrefixedParser,
    encode_length_prefixed,
)
from weft.protocols.framing._lines import LineParser, encode_line
from weft.protocols.framing._netstring import NetstringParser, encode_netstring
from weft.protocols.framing._parser import DEFAULT_MAX_FRAME_LENGTH, FrameParser, iter_frames
from weft.protocols.framing._receiver import (
    FrameReceiver,
    LengthPrefixedProtocol,
    LineProtocol,
    NetstringProtocol,
)

__all__ = [
    "DEFAULT_MAX_FRAME_LENGTH",
    "PREFIX_SIZES",
    "FrameParser",
    "FrameReceiver",
    "LengthPrefixedParser",
    "LengthPrefixedProtocol",
    "LineParser",
    "LineProtocol",
    "NetstringParser",
    "NetstringProtocol",
    "encode_length_prefixed",
    "encode_line",
    "encode_netstring",
    "iter_frames",
]
