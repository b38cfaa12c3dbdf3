"""Command-line pieces the benchmark scripts share: sizes, lists, server choice."""

from __future__ import annotations

import argparse

import servers


def parse_size(text: str) -> int:
    """``64``, ``64B``, ``1k``, ``1KiB``, ``16K`` -> bytes."""
    cleaned = text.strip().lower().removesuffix("ib").removesuffix("b")
    factor = 1024 if cleaned.endswith("k") else 1
    try:
        number = int(cleaned.removesuffix("k"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a message size: {text!r}") from None
    if number <= 0:
        raise argparse.ArgumentTypeError(f"a message size must be positive, not {text!r}")
    return number * factor


def parse_sizes(text: str) -> list[int]:
    """A comma-separated list of sizes (``64,1k,16k``)."""
    return [parse_size(part) for part in text.split(",")]


def parse_counts(text: str) -> list[int]:
    """A comma-separated list of positive integers."""
    try:
        counts = [int(part) for part in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a list of numbers: {text!r}") from None
    if min(counts) < 1:
        raise argparse.ArgumentTypeError(f"counts must be positive: {text!r}")
    return counts


def show_size(size: int) -> str:
    """Bytes as the tables show them: ``64 B``, ``16 KiB``."""
    return f"{size // 1024} KiB" if size % 1024 == 0 else f"{size} B"


def choose_servers(spec: str | None, kinds: list[servers.ServerKind]) -> list[str]:
    """The servers named in ``spec`` (every default one when None), in the canonical order.

    Exits with a message naming the available ones for a name that is
    unknown or cannot run here.
    """
    known = [kind.name for kind in kinds]
    if spec is None:
        return [kind.name for kind in kinds if kind.default]
    wanted = [name.strip() for name in spec.split(",") if name.strip()]
    if unknown := [name for name in wanted if name not in known]:
        raise SystemExit(
            f"unknown or unavailable server(s): {', '.join(unknown)}; available: {', '.join(known)}"
        )
    return [name for name in known if name in wanted]


def add_run_options(parser: argparse.ArgumentParser, *, best: str, client: str, disturbed: str) -> None:
    """The options every benchmark grid shares: which servers, how many runs,
    which run a row reports (``best``: what "best" means), the cores, the
    table format.  ``client`` names the load generator, ``disturbed`` the
    runs that are run again."""
    parser.add_argument(
        "--servers",
        help="servers to run, comma-separated (see --list); default: every default one available",
    )
    parser.add_argument("--repeat", type=int, default=5, help="runs per server and cell, interleaved")
    parser.add_argument(
        "--stat",
        choices=["best", "median"],
        default="best",
        help=f"which run a row reports: {best}, or the median",
    )
    parser.add_argument(
        "--retries", type=int, default=2, help=f"runs again, at most this many times, {disturbed}"
    )
    parser.add_argument("--markdown", action="store_true", help="print a Markdown table for docs")
    parser.add_argument("--server-cpu", type=int, default=0, help="core the server is pinned to")
    parser.add_argument("--client-cpu", type=int, default=1, help=f"core {client} is pinned to")
    parser.add_argument(
        "--fresh-malloc",
        action="store_true",
        help="do not settle glibc's mmap threshold in the servers (see servers.settle_allocator)",
    )
    parser.add_argument("--list", action="store_true", help="list the servers that can run here, and exit")
