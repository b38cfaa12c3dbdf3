"""DNS messages on the wire (RFC 1035): an A query built, an answer parsed.

Only what a stub resolver needs: one question of type A (or AAAA) and
class IN, recursion desired; an answer's header, its question (checked
against the query), and its answer records, names decompressed with a
bound on the pointers followed.  Everything else (authority and additional
sections, EDNS) is left alone.  Bytes in, values out: no socket, no clock.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from weft.protocols.errors import MalformedFrameError, UnencodableFrameError

__all__ = [
    "TYPE_A",
    "TYPE_AAAA",
    "DNSAnswer",
    "DNSRecord",
    "build_query",
    "encode_name",
    "parse_answer",
]

TYPE_A = 1
TYPE_AAAA = 28
CLASS_IN = 1

_HEADER = struct.Struct("!HHHHHH")
_QUESTION_TAIL = struct.Struct("!HH")
_RECORD_HEAD = struct.Struct("!HHIH")

_FLAG_RESPONSE = 0x8000
_FLAG_TRUNCATED = 0x0200
_FLAG_RECURSION_DESIRED = 0x0100
_RCODE_MASK = 0x000F

#: Compression pointers followed in one name before it is called a loop.
_MAX_POINTERS = 32


@dataclass(frozen=True)
class DNSRecord:
    """One answer record: its owner ``name``, ``type``, ``ttl`` (seconds) and ``data``."""

    name: str
    type: int
    ttl: int
    data: bytes

    @property
    def address(self) -> str | None:
        """The address an A or AAAA record holds, as text; ``None`` for other types."""
        if self.type == TYPE_A and len(self.data) == 4:
            return ".".join(str(byte) for byte in self.data)
        if self.type == TYPE_AAAA and len(self.data) == 16:
            groups = struct.unpack("!8H", self.data)
            return _ipv6_text(groups)
        return None


@dataclass(frozen=True)
class DNSAnswer:
    """A parsed answer: its ``id``, response code, truncation, question and records."""

    id: int
    rcode: int
    truncated: bool
    question: tuple[str, int]
    records: tuple[DNSRecord, ...]

    def addresses(self, record_type: int = TYPE_A) -> list[str]:
        """The addresses of the records of ``record_type``, in the answer's order."""
        return [
            address
            for record in self.records
            if record.type == record_type and (address := record.address) is not None
        ]


def encode_name(name: str) -> bytes:
    """``name`` as DNS labels (IDNA for non-ASCII); UnencodableFrameError for
    an empty label, one over 63 bytes, or a name over 253."""
    text = name[:-1] if name.endswith(".") else name
    if not text:
        raise UnencodableFrameError(f"cannot look up the empty name {name!r}")
    try:
        labels = [label.encode("idna") for label in text.split(".")]
    except UnicodeError as exc:
        raise UnencodableFrameError(f"{name!r} is no valid DNS name: {exc}") from None
    if len(text) > 253 or any(not 1 <= len(label) <= 63 for label in labels):
        raise UnencodableFrameError(f"{name!r} is no valid DNS name (labels of 1 to 63 bytes, 253 in all)")
    return b"".join(bytes([len(label)]) + label for label in labels) + b"\0"


def build_query(name: str, *, query_id: int, record_type: int = TYPE_A) -> bytes:
    """A recursive query for the ``record_type`` records of ``name``, with id ``query_id``."""
    if not 0 <= query_id <= 0xFFFF:
        raise UnencodableFrameError(f"a DNS id is 16 bits, not {query_id!r}")
    header = _HEADER.pack(query_id, _FLAG_RECURSION_DESIRED, 1, 0, 0, 0)
    return header + encode_name(name) + _QUESTION_TAIL.pack(record_type, CLASS_IN)


def parse_answer(data: bytes) -> DNSAnswer:
    """Parse a DNS response; MalformedFrameError for bytes that are not one."""
    if len(data) < _HEADER.size:
        raise MalformedFrameError(f"a DNS message of {len(data)} bytes is shorter than its header")
    query_id, flags, questions, answers, _authority, _additional = _HEADER.unpack_from(data)
    if not flags & _FLAG_RESPONSE:
        raise MalformedFrameError("a DNS query, not an answer")
    if questions != 1:
        raise MalformedFrameError(f"an answer with {questions} questions, not 1")
    name, offset = _read_name(data, _HEADER.size)
    question_type, _class = _unpack(_QUESTION_TAIL, data, offset)
    offset += _QUESTION_TAIL.size
    records = []
    for _ in range(answers):
        owner, offset = _read_name(data, offset)
        record_type, _record_class, ttl, length = _unpack(_RECORD_HEAD, data, offset)
        offset += _RECORD_HEAD.size
        if offset + length > len(data):
            raise MalformedFrameError("a record's data runs past the end of the message")
        records.append(DNSRecord(owner, record_type, ttl, data[offset : offset + length]))
        offset += length
    return DNSAnswer(
        query_id, flags & _RCODE_MASK, bool(flags & _FLAG_TRUNCATED), (name, question_type), tuple(records)
    )


def _unpack(layout: struct.Struct, data: bytes, offset: int) -> tuple[int, ...]:
    if offset + layout.size > len(data):
        raise MalformedFrameError("a DNS message ends in the middle of a field")
    return layout.unpack_from(data, offset)


def _read_name(data: bytes, offset: int) -> tuple[str, int]:
    """The name at ``offset`` (lower case, no final dot) and the offset after
    it, following compression pointers (at most _MAX_POINTERS)."""
    labels: list[str] = []
    end: int | None = None
    pointers = 0
    while True:
        if offset >= len(data):
            raise MalformedFrameError("a DNS name runs past the end of the message")
        length = data[offset]
        if length & 0xC0 == 0xC0:
            if offset + 1 >= len(data):
                raise MalformedFrameError("a compression pointer cut in half")
            pointers += 1
            if pointers > _MAX_POINTERS:
                raise MalformedFrameError("a DNS name's compression pointers loop")
            if end is None:
                end = offset + 2
            offset = ((length & 0x3F) << 8) | data[offset + 1]
            continue
        if length & 0xC0:
            raise MalformedFrameError(f"a DNS label length byte 0x{length:02x} of an unknown kind")
        offset += 1
        if length == 0:
            return ".".join(labels), offset if end is None else end
        if offset + length > len(data):
            raise MalformedFrameError("a DNS label runs past the end of the message")
        labels.append(data[offset : offset + length].decode("ascii", "replace").lower())
        offset += length


def _ipv6_text(groups: tuple[int, ...]) -> str:
    """RFC 5952's text for eight 16-bit groups: the longest run of zeros (two
    or more) as ``::``, the first of equals."""
    best_start, best_length, start = -1, 1, -1
    for index, group in enumerate((*groups, 1)):
        if group == 0 and start < 0:
            start = index
        elif group != 0 and start >= 0:
            if index - start > best_length:
                best_start, best_length = start, index - start
            start = -1
    text = [f"{group:x}" for group in groups]
    if best_start < 0:
        return ":".join(text)
    return ":".join(text[:best_start]) + "::" + ":".join(text[best_start + best_length :])
