"""Framing throughput: weft's parsers and protocols beside Twisted's receivers and asyncio's streams.

One deterministic workload per framing (seeded, so every run and every
implementation sees the same bytes, cut into the same chunks):

* lines: about 21 MB of lines of 0 to 70 bytes, in about 620 chunks of random
  size (and a second run in small chunks, 64 B to 4 KiB, as network reads
  of a slow peer arrive);
* length-prefixed: 4-byte big-endian prefixes, payloads of 0 to 200 bytes;
* netstrings: the same payloads as netstrings.

Each implementation counts the frames it is handed (a protocol's handler
adds one to a counter).  The figure is frames per second of CPU time
(``time.process_time``), the best of ``--repeat`` runs, implementations
interleaved so that a disturbance of the machine hits all of them alike.
Ratios are to Twisted's receivers (the peers the issue names).

Two "bare Python" rows per framing are yardsticks, not implementations: the
same handler called once per frame on frames cut beforehand (what any
Python library that hands each frame to a method pays at least), and the
tightest plain loop that cuts and hands out frames (a split, or an unpack
and a slice, per frame), with no limit, pause, raw mode or closing check.

    python benchmarks/framing.py              # every table, about a minute
    python benchmarks/framing.py --markdown   # the same, for docs/performance.md

Twisted is optional: without it its rows are left out (and so are the ratios).
"""

from __future__ import annotations

import argparse
import asyncio
import random
import struct
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from weft.protocols.framing import (
    LengthPrefixedParser,
    LengthPrefixedProtocol,
    LineParser,
    LineProtocol,
    NetstringParser,
    NetstringProtocol,
    encode_length_prefixed,
    encode_netstring,
)

LINE_LIMIT = 16 * 1024

#: How the workload is cut: (name, smallest chunk, largest chunk).
CHUNKINGS = {"large": (1, 68_000), "small": (64, 4096)}


@dataclass
class Workload:
    """The chunks to feed, and the frames they hold (as a parser hands them out)."""

    name: str
    chunks: list[bytes]
    payloads: list[bytes]

    @property
    def frames(self) -> int:
        """How many frames the chunks hold."""
        return len(self.payloads)


def line_workload(chunking: str, total: int, seed: int = 11) -> Workload:
    rng = random.Random(seed)
    alphabet = bytes(range(32, 127))
    lines = []
    size = 0
    while size < total:
        line = bytes(rng.choices(alphabet, k=rng.randrange(71)))
        lines.append(line)
        size += len(line) + 1
    data = b"".join(line + b"\n" for line in lines)
    return Workload(f"lines, {chunking} chunks", cut(data, chunking, rng), lines)


def payloads(total: int, rng: random.Random) -> list[bytes]:
    found = []
    size = 0
    while size < total:
        payload = rng.randbytes(rng.randrange(201))
        found.append(payload)
        size += len(payload) + 4
    return found


def length_prefixed_workload(chunking: str, total: int, seed: int = 12) -> Workload:
    rng = random.Random(seed)
    frames = payloads(total, rng)
    data = b"".join(encode_length_prefixed(frame) for frame in frames)
    return Workload(f"length-prefixed, {chunking} chunks", cut(data, chunking, rng), frames)


def netstring_workload(chunking: str, total: int, seed: int = 13) -> Workload:
    rng = random.Random(seed)
    frames = payloads(total, rng)
    data = b"".join(encode_netstring(frame) for frame in frames)
    return Workload(f"netstrings, {chunking} chunks", cut(data, chunking, rng), frames)


def cut(data: bytes, chunking: str, rng: random.Random) -> list[bytes]:
    low, high = CHUNKINGS[chunking]
    chunks = []
    start = 0
    while start < len(data):
        end = start + rng.randint(low, high)
        chunks.append(data[start:end])
        start = end
    return chunks


# --------------------------------------------------------------- runners


class NullTransport:
    """The least a protocol needs from a transport: never closing, writes dropped."""

    disconnecting = False

    def is_closing(self) -> bool:
        """Never."""
        return False

    def write(self, data: bytes) -> None:
        """Drop ``data``."""

    def pause_reading(self) -> None:
        """Nothing to pause."""

    def resume_reading(self) -> None:
        """Nothing to resume."""

    def loseConnection(self) -> None:
        """Twisted's close: nothing to close."""

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        """Nothing known: ``default``."""
        return default


Runner = Callable[[Workload], int]


def feed_protocol(protocol: Any, chunks: list[bytes], method: str) -> None:
    protocol.makeConnection(NullTransport()) if hasattr(protocol, "makeConnection") else (
        protocol.connection_made(NullTransport())
    )
    receive = getattr(protocol, method)
    for chunk in chunks:
        receive(chunk)


def parser_runner(make_parser: Callable[[], Any]) -> Runner:
    """Feed each chunk to a new parser and take every frame it completes."""

    def run(workload: Workload) -> int:
        parser = make_parser()
        count = 0
        feed = parser.feed
        frames = parser.frames
        for chunk in workload.chunks:
            feed(chunk)
            for _frame in frames():
                count += 1
        return count

    return run


def protocol_runner(make_protocol: Callable[[], Any]) -> Runner:
    """Hand each chunk to a new protocol's ``data_received``; its handler counts."""

    def run(workload: Workload) -> int:
        protocol = make_protocol()
        feed_protocol(protocol, workload.chunks, "data_received")
        return int(protocol.count)

    return run


class CountingLines(LineProtocol):
    """Counts the lines it receives."""

    max_line_length = LINE_LIMIT
    count = 0

    def line_received(self, line: bytes) -> None:
        """Count it."""
        self.count += 1


class CountingLengthPrefixed(LengthPrefixedProtocol):
    """Counts the frames it receives."""

    max_length = LINE_LIMIT
    count = 0

    def frame_received(self, frame: bytes) -> None:
        """Count it."""
        self.count += 1


class CountingNetstrings(NetstringProtocol):
    """Counts the netstrings it receives."""

    max_length = LINE_LIMIT
    count = 0

    def frame_received(self, frame: bytes) -> None:
        """Count it."""
        self.count += 1


def asyncio_readline(workload: Workload) -> int:
    return asyncio.run(_stream_frames(workload.chunks, "lines"))


def asyncio_readexactly(workload: Workload) -> int:
    return asyncio.run(_stream_frames(workload.chunks, "length-prefixed"))


# ------------------------------------------------------ bare Python yardsticks


class Counter:
    """The handler every implementation has: a method that counts."""

    count = 0

    def frame_received(self, frame: bytes) -> None:
        """Count it."""
        self.count += 1


def calls_alone(workload: Workload) -> int:
    """The handler called once per frame, on frames cut beforehand."""
    counter = Counter()
    handler = counter.frame_received
    for frame in workload.payloads:
        handler(frame)
    return counter.count


def bare_lines(workload: Workload) -> int:
    """One split per chunk, the rest carried over, a call per line; nothing checked."""
    counter = Counter()
    handler = counter.frame_received
    rest = b""
    for chunk in workload.chunks:
        lines = (rest + chunk).split(b"\n")
        rest = lines.pop()
        for line in lines:
            handler(line)
    return counter.count


def bare_length_prefixed(workload: Workload) -> int:
    """An unpack_from and a slice per frame, a call per frame; nothing checked."""
    counter = Counter()
    handler = counter.frame_received
    unpack_length = struct.Struct(">I").unpack_from
    rest = b""
    for chunk in workload.chunks:
        data = rest + chunk
        end = len(data)
        last = end - 4
        offset = 0
        while offset <= last:
            (length,) = unpack_length(data, offset)
            start = offset + 4
            stop = start + length
            if stop > end:
                break
            handler(data[start:stop])
            offset = stop
        rest = data[offset:]
    return counter.count


def bare_netstrings(workload: Workload) -> int:
    """A find, an int and a slice per frame, a call per frame; nothing checked."""
    counter = Counter()
    handler = counter.frame_received
    rest = b""
    for chunk in workload.chunks:
        data = rest + chunk
        end = len(data)
        offset = 0
        while (colon := data.find(b":", offset)) >= 0:
            stop = colon + 1 + int(data[offset:colon])
            if stop >= end:
                break
            handler(data[colon + 1 : stop])
            offset = stop + 1
        rest = data[offset:]
    return counter.count


async def _stream_frames(chunks: list[bytes], framing: str) -> int:
    reader = asyncio.StreamReader(limit=LINE_LIMIT * 4)

    async def feed() -> None:
        for chunk in chunks:
            reader.feed_data(chunk)
            await asyncio.sleep(0)
        reader.feed_eof()

    async def count_lines() -> int:
        count = 0
        readline = reader.readline
        while await readline():
            count += 1
        return count

    async def count_prefixed() -> int:
        count = 0
        readexactly = reader.readexactly
        while True:
            try:
                prefix = await readexactly(4)
            except asyncio.IncompleteReadError:
                return count
            await readexactly(int.from_bytes(prefix, "big"))
            count += 1

    feeding = asyncio.create_task(feed())
    count = await (count_lines() if framing == "lines" else count_prefixed())
    await feeding
    return count


def twisted_runners() -> dict[str, dict[str, Runner]]:
    try:
        from twisted.protocols import basic
    except ImportError:
        return {}

    class CountingLineReceiver(basic.LineReceiver):
        MAX_LENGTH = LINE_LIMIT
        delimiter = b"\n"
        count = 0

        def lineReceived(self, line: bytes) -> None:
            self.count += 1

    class CountingLineOnlyReceiver(basic.LineOnlyReceiver):
        MAX_LENGTH = LINE_LIMIT
        delimiter = b"\n"
        count = 0

        def lineReceived(self, line: bytes) -> None:
            self.count += 1

    class CountingInt32(basic.Int32StringReceiver):
        MAX_LENGTH = LINE_LIMIT
        count = 0

        def stringReceived(self, string: bytes) -> None:
            self.count += 1

    class CountingNetstring(basic.NetstringReceiver):
        MAX_LENGTH = LINE_LIMIT
        count = 0

        def stringReceived(self, string: bytes) -> None:
            self.count += 1

    def runner(cls: type) -> Runner:
        def run(workload: Workload) -> int:
            protocol = cls()
            feed_protocol(protocol, workload.chunks, "dataReceived")
            return int(protocol.count)

        return run

    return {
        "lines": {
            "Twisted LineReceiver": runner(CountingLineReceiver),
            "Twisted LineOnlyReceiver": runner(CountingLineOnlyReceiver),
        },
        "length-prefixed": {"Twisted Int32StringReceiver": runner(CountingInt32)},
        "netstrings": {"Twisted NetstringReceiver": runner(CountingNetstring)},
    }


def runners() -> dict[str, dict[str, Runner]]:
    found: dict[str, dict[str, Runner]] = {
        "lines": {
            "weft LineParser": parser_runner(lambda: LineParser(max_length=LINE_LIMIT)),
            "weft LineProtocol": protocol_runner(CountingLines),
            "asyncio StreamReader.readline": asyncio_readline,
            "bare Python: a call per line, pre-cut": calls_alone,
            "bare Python: split, a call per line": bare_lines,
        },
        "length-prefixed": {
            "weft LengthPrefixedParser": parser_runner(lambda: LengthPrefixedParser(max_length=LINE_LIMIT)),
            "weft LengthPrefixedProtocol": protocol_runner(CountingLengthPrefixed),
            "asyncio StreamReader.readexactly": asyncio_readexactly,
            "bare Python: a call per frame, pre-cut": calls_alone,
            "bare Python: unpack, slice, a call per frame": bare_length_prefixed,
        },
        "netstrings": {
            "weft NetstringParser": parser_runner(lambda: NetstringParser(max_length=LINE_LIMIT)),
            "weft NetstringProtocol": protocol_runner(CountingNetstrings),
            "bare Python: a call per frame, pre-cut": calls_alone,
            "bare Python: find, int, slice, a call per frame": bare_netstrings,
        },
    }
    for framing, peers in twisted_runners().items():
        found[framing].update(peers)
    return found


WORKLOADS: dict[str, Callable[[str, int], Workload]] = {
    "lines": line_workload,
    "length-prefixed": length_prefixed_workload,
    "netstrings": netstring_workload,
}

#: The peers each framing's ratios are taken against, when present.
REFERENCES = {
    "lines": ["Twisted LineReceiver", "Twisted LineOnlyReceiver"],
    "length-prefixed": ["Twisted Int32StringReceiver"],
    "netstrings": ["Twisted NetstringReceiver"],
}


def measure(workload: Workload, contenders: dict[str, Runner], repeat: int) -> dict[str, float]:
    """Frames per CPU second for each contender, the best of ``repeat`` interleaved runs."""
    best: dict[str, float] = {}
    for _ in range(repeat):
        for name, run in contenders.items():
            started = time.process_time()
            count = run(workload)
            elapsed = time.process_time() - started
            if count != workload.frames:
                raise SystemExit(f"{name} counted {count} frames of {workload.name}, not {workload.frames}")
            best[name] = max(best.get(name, 0.0), count / elapsed)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--repeat", type=int, default=5, help="runs per implementation; the best counts")
    parser.add_argument("--megabytes", type=float, default=21.0, help="size of each workload")
    parser.add_argument("--framings", default="lines,length-prefixed,netstrings")
    parser.add_argument("--chunkings", default="large,small")
    parser.add_argument("--markdown", action="store_true", help="print tables for docs/performance.md")
    options = parser.parse_args()
    total = int(options.megabytes * 1_000_000)
    everyone = runners()
    print(f"# {sys.version.split()[0]}, best of {options.repeat}, frames per CPU second")
    for framing in options.framings.split(","):
        for chunking in options.chunkings.split(","):
            workload = WORKLOADS[framing](chunking, total)
            rates = measure(workload, everyone[framing], options.repeat)
            show(workload, rates, [ref for ref in REFERENCES[framing] if ref in rates], options.markdown)


def show(workload: Workload, rates: dict[str, float], references: list[str], markdown: bool) -> None:
    title = f"{workload.name}: {workload.frames:,} frames in {len(workload.chunks):,} chunks"
    ratio_heads = [f"vs {ref.removeprefix('Twisted ')}" for ref in references]
    if markdown:
        print(f"\n**{title}**\n")
        print("| implementation | M frames/s | " + " | ".join(ratio_heads) + " |")
        print("|---|---:|" + "---:|" * len(references))
    else:
        print(f"\n{title}")
        print(f"  {'implementation':48} {'M frames/s':>10}  " + "  ".join(f"{h:>22}" for h in ratio_heads))
    for name, rate in rates.items():
        ratios = [f"{rate / rates[ref]:.2f}" for ref in references]
        if markdown:
            print(f"| {name} | {rate / 1e6:.2f} | " + " | ".join(ratios) + " |")
        else:
            print(f"  {name:48} {rate / 1e6:10.2f}  " + "  ".join(f"{r:>22}" for r in ratios))


if __name__ == "__main__":
    main()
