"""Netstrings (D. J. Bernstein): ``<length>:<payload>,`` with a decimal length.

``b"hello"`` is sent as ``b"5:hello,"`` and the empty string as ``b"0:,"``.
The length has no sign and no leading zeros.  The parser judges the header
byte by byte in stream order, so a bad header gives the same error whatever
the chunking, and never looks at more header bytes than the longest length
the limit allows: a header with too many digits is refused at the first
digit too many, a length over the limit before any payload is kept.
"""

from __future__ import annotations

from weft.protocols.errors import FrameTooLongError, MalformedFrameError, ProtocolError
from weft.protocols.framing._cutting import CuttingParser
from weft.protocols.framing._parser import DEFAULT_MAX_FRAME_LENGTH

__all__ = ["NetstringParser", "encode_netstring"]

_COLON = ord(":")
_COMMA = ord(",")
_ZERO = ord("0")
_NINE = ord("9")


def encode_netstring(payload: bytes) -> bytes:
    """``payload`` as a netstring."""
    return b"%d:%s," % (len(payload), payload)


class NetstringParser(CuttingParser):
    """Cuts a byte stream of netstrings into their payloads.

    Frames are cut as bytes are fed (see :mod:`~weft.protocols.framing._cutting`).
    A well-formed header is read with one ``find``; a bad one is judged
    byte by byte (:meth:`_header_error`), so its error is the same whatever
    the chunking, and comes out of :meth:`next_frame` after the frames
    before it.
    """

    __slots__ = ("_max_digits",)

    def __init__(self, max_length: int = DEFAULT_MAX_FRAME_LENGTH) -> None:
        super().__init__(max_length, 1)
        self._max_digits = len(str(max_length))

    def _cut(self, data: bytes) -> tuple[list[bytes], int, int]:
        max_digits = self._max_digits
        limit = self._max_length
        end = len(data)
        frames: list[bytes] = []
        cut = frames.append
        offset = 0
        need = 1
        while offset < end:
            colon = data.find(b":", offset, offset + max_digits + 1)
            header = data[offset:colon]
            if colon < 0 or not header.isdigit() or (header[0] == _ZERO and colon - offset > 1):
                # No colon yet, or a header that is not plain digits: judge
                # it byte by byte, for the error the stream order gives.
                window = data[offset : offset + max_digits + 1]
                if (error := self._header_error(window)) is not None:
                    self._refused = error
                else:
                    need = end - offset + 1
                break
            length = int(header)
            if length > limit:
                self._refused = self._too_long(length, "netstring")
                break
            stop = colon + 1 + length
            if stop >= end:
                need = stop + 1 - offset
                break
            if data[stop] != _COMMA:
                self._refused = MalformedFrameError("netstring payload not followed by ','")
                break
            cut(data[colon + 1 : stop])
            offset = stop + 1
        return frames, offset, need

    def _encode(self, payload: bytes) -> bytes:
        return encode_netstring(payload)

    def _first_need(self) -> int:
        # Every header byte is judged as it comes: a bad first byte is an
        # error at once.
        return 1

    def _header_error(self, window: bytes) -> ProtocolError | None:
        """The error the header at the front of ``window`` makes, judged in stream order.

        None when ``window`` is the valid start of a header whose colon has
        not arrived yet.
        """
        for index, byte in enumerate(window):
            if byte == _COLON:
                if index == 0:
                    return MalformedFrameError("netstring has an empty length")
                length = int(window[:index])
                return self._too_long(length, "netstring") if length > self._max_length else None
            if not _ZERO <= byte <= _NINE:
                return MalformedFrameError(f"netstring length holds {bytes([byte])!r}")
            if index == 1 and window[0] == _ZERO:
                return MalformedFrameError("netstring length has a leading zero")
            if index == self._max_digits:
                return FrameTooLongError(
                    f"netstring length has more digits than the limit of {self._max_length} allows",
                    limit=self._max_length,
                    length=10**index,
                )
        return None
