"""Shared test settings, and the fixtures every process-level test uses."""

import os
from collections.abc import Iterator

import pytest
from hypothesis import HealthCheck, settings

from tests.processes import Children, started_children

# No deadline: CI machines are slow and shared, and a property's speed is
# not what it tests.  Speed is measured by benchmarks/, never here.
settings.register_profile(
    "weft", deadline=None, suppress_health_check=[HealthCheck.too_slow], max_examples=200
)
# The same properties, a hundred times longer: for the attack script and for
# fuzzing by hand (docs/testing.md, "Fuzzing"):
#     HYPOTHESIS_PROFILE=long python -m pytest tests/test_fuzz_*.py
settings.register_profile("long", parent=settings.get_profile("weft"), max_examples=20_000)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "weft"))


@pytest.fixture
def children() -> Iterator[Children]:
    """Child processes for the test, each killed by its PID when it ends."""
    with started_children() as made:
        yield made
