"""The fuzzers, run longer: every parser and the HTTP protocols fed hostile bytes.

The test suite runs them with a modest budget (200 examples a property); the
attack suite runs the same properties through pytest with the scale's
hypothesis profile (``--long``: 20,000 examples a property, some minutes).
Any exception other than weft's documented errors fails a property.  The
case does not depend on a driver: it runs once, under the first one.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

from .context import Attack
from .results import Figure, equals, report

#: The fuzz properties: every non-HTTP parser, pub/sub, echo, and HTTP.
FUZZ_TESTS = (
    "tests/protocols/test_fuzz_framing.py",
    "tests/protocols/test_fuzz_pubsub.py",
    "tests/protocols/test_fuzz_echo.py",
    "tests/protocols/test_http_fuzz.py",
)

_ROOT = Path(__file__).resolve().parents[2]
_SUMMARY = re.compile(r"(\d+) (passed|failed|error)")


def fuzz(attack: Attack) -> list[Figure]:
    """Run the fuzz properties with the scale's profile; every one must hold."""
    environment = {**os.environ, "HYPOTHESIS_PROFILE": attack.scale.fuzz_profile}
    finished = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *FUZZ_TESTS],
        cwd=_ROOT,
        env=environment,
        capture_output=True,
        text=True,
        check=False,
    )
    counts = {kind: int(number) for number, kind in _SUMMARY.findall(finished.stdout.splitlines()[-1])}
    return [
        report("hypothesis profile", attack.scale.fuzz_profile),
        report("properties passed", counts.get("passed", 0)),
        equals("properties failed", counts.get("failed", 0) + counts.get("error", 0), 0),
        equals("pytest exit status", finished.returncode, 0),
    ]
