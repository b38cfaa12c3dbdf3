"""The testing kit's one namespace: what it exports, and what it says when hypothesis is missing."""

from __future__ import annotations

import subprocess
import sys

import pytest

import weft.drivers.testing as testing
from tests.support import TIMEOUT


def test_the_kit_is_one_namespace() -> None:
    """The memory driver, its pump, the fake clock, the recording protocol and the
    strategies are all imported from weft.drivers.testing."""
    for name in ("connect", "connect_pair", "Pump", "FakeClock", "RecordingProtocol", "chunkings", "chunked"):
        assert name in testing.__all__
        assert getattr(testing, name) is not None


def test_an_unknown_name_is_an_attribute_error() -> None:
    """The lazy lookup of the strategies does not swallow other names."""
    with pytest.raises(AttributeError, match="no_such_name"):
        testing.no_such_name  # noqa: B018


def test_without_hypothesis_the_kit_imports_and_the_strategies_name_the_extra() -> None:
    """With hypothesis missing, the memory driver still imports, and asking for a
    strategy raises one line naming the ``test`` extra."""
    script = (
        "import sys; sys.modules['hypothesis'] = None\n"
        "from weft.drivers.testing import FakeClock, connect\n"
        "try:\n"
        "    from weft.drivers.testing import chunkings\n"
        "except ModuleNotFoundError as error:\n"
        "    print(error)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=TIMEOUT, check=False
    )
    assert result.returncode == 0, result.stderr
    expected = "weft.drivers.testing.chunkings needs hypothesis: pip install 'weft[test]'"
    assert result.stdout.strip() == expected
