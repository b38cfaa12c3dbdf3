"""Length-prefixed framing: each frame is a big-endian length, then that many bytes.

The prefix is 1, 2 or 4 bytes (8, 16 or 32 bits), as in Twisted's
``Int8StringReceiver``, ``Int16StringReceiver`` and ``Int32StringReceiver``.
A frame whose announced length is over the limit is refused as soon as the
prefix is read, before any of its payload is kept.
"""

from __future__ import annotations

import struct

from weft.protocols.errors import ArgumentError, UnencodableFrameError
from weft.protocols.framing._cutting import CuttingParser
from weft.protocols.framing._parser import DEFAULT_MAX_FRAME_LENGTH

__all__ = ["PREFIX_SIZES", "LengthPrefixedParser", "encode_length_prefixed"]

#: The prefix sizes supported, in bytes.
PREFIX_SIZES = (1, 2, 4)

_PREFIX_FORMATS = {1: ">B", 2: ">H", 4: ">I"}


def _check_prefix_size(prefix_size: int) -> None:
    if prefix_size not in PREFIX_SIZES:
        raise ArgumentError(f"prefix_size must be one of {PREFIX_SIZES}, not {prefix_size!r}")


def encode_length_prefixed(payload: bytes, prefix_size: int = 4) -> bytes:
    """``payload`` with its big-endian length in front.

    Raises :class:`~weft.protocols.errors.UnencodableFrameError` if the
    payload is too long for the prefix.
    """
    _check_prefix_size(prefix_size)
    if len(payload) >= 1 << (8 * prefix_size):
        raise UnencodableFrameError(
            f"a {len(payload)}-byte payload does not fit a {prefix_size}-byte length prefix"
        )
    return len(payload).to_bytes(prefix_size, "big") + payload


class LengthPrefixedParser(CuttingParser):
    """Cuts a byte stream into length-prefixed frames (the prefix is removed).

    Frames are cut as bytes are fed (see :mod:`~weft.protocols.framing._cutting`);
    an announced length over the limit stops the cutting there, and its
    error comes out of :meth:`next_frame` after the frames before it.
    """

    __slots__ = ("_prefix_size", "_unpack_length")

    def __init__(self, prefix_size: int = 4, max_length: int = DEFAULT_MAX_FRAME_LENGTH) -> None:
        _check_prefix_size(prefix_size)
        super().__init__(max_length, prefix_size)
        self._prefix_size = prefix_size
        self._unpack_length = struct.Struct(_PREFIX_FORMATS[prefix_size]).unpack_from

    @property
    def prefix_size(self) -> int:
        """Bytes in each length prefix."""
        return self._prefix_size

    def _cut(self, data: bytes) -> tuple[list[bytes], int, int]:
        unpack_length = self._unpack_length
        prefix_size = self._prefix_size
        limit = self._max_length
        end = len(data)
        last = end - prefix_size  # the last offset a whole prefix fits at
        frames: list[bytes] = []
        cut = frames.append
        offset = 0
        while offset <= last:
            (length,) = unpack_length(data, offset)
            if length > limit:
                self._refused = self._too_long(length)
                break
            start = offset + prefix_size
            stop = start + length
            if stop > end:
                return frames, offset, prefix_size + length
            cut(data[start:stop])
            offset = stop
        return frames, offset, prefix_size

    def _encode(self, payload: bytes) -> bytes:
        return len(payload).to_bytes(self._prefix_size, "big") + payload

    def _first_need(self) -> int:
        return self._prefix_size
