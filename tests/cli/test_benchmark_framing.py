"""A smoke run of benchmarks/framing.py: every implementation runs, counts every frame, and is in the table.

The real run is in docs/performance.md; this runs the script on a small
workload, as a person would, and checks what it printed, never the figures
(the script itself exits with an error when an implementation miscounts).
"""

from __future__ import annotations

import importlib.util
import subprocess
import sys

from tests.support import TIMEOUT
from tests.support.processes import ROOT

SCRIPT = str(ROOT / "benchmarks" / "framing.py")


def test_every_framing_table_lists_weft_and_its_peers() -> None:
    """Lines, length-prefixed and netstrings, in both chunkings, with Twisted's rows when it is here."""
    done = subprocess.run(
        [sys.executable, SCRIPT, "--repeat", "1", "--megabytes", "0.05", "--markdown"],
        capture_output=True,
        text=True,
        timeout=TIMEOUT * 4,
        check=True,
    )
    out = done.stdout
    for title in ("lines", "length-prefixed", "netstrings"):
        for chunking in ("large", "small"):
            assert f"**{title}, {chunking} chunks:" in out
    expected = [
        "weft LineParser",
        "weft LineProtocol",
        "asyncio StreamReader.readline",
        "weft LengthPrefixedProtocol",
        "asyncio StreamReader.readexactly",
        "weft NetstringProtocol",
        "bare Python: a call per line, pre-cut",
        "bare Python: split, a call per line",
        "bare Python: unpack, slice, a call per frame",
        "bare Python: find, int, slice, a call per frame",
    ]
    if importlib.util.find_spec("twisted.protocols") is not None:
        expected += ["Twisted LineReceiver", "Twisted LineOnlyReceiver", "Twisted Int32StringReceiver"]
    for name in expected:
        assert f"| {name} |" in out, name
