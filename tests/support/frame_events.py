"""What a frame parser produces, as a list: the shared yardstick of the chunking properties."""

from __future__ import annotations

from weft.protocols.errors import ProtocolError
from weft.protocols.framing import FrameParser

#: A frame, or the type of the error that ended the stream.
Event = bytes | type[ProtocolError]


def drain(parser: FrameParser) -> list[Event]:
    """Every frame available now; the error's type last if one is raised."""
    events: list[Event] = []
    try:
        events.extend(parser.frames())
    except ProtocolError as exc:
        events.append(type(exc))
    return events


def run(parser: FrameParser, chunks: list[bytes]) -> list[Event]:
    """Feed ``chunks`` one by one, draining after each until the error: the events seen.

    Chunks after the error are still fed (the parser must ignore them).
    """
    events: list[Event] = []
    for chunk in chunks:
        parser.feed(chunk)
        if parser.error is None:
            events.extend(drain(parser))
    return events
