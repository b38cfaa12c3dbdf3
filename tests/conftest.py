"""Shared test settings, and the fixtures every process-level test uses."""

from collections.abc import Iterator

import pytest
from hypothesis import HealthCheck, settings

from tests.processes import Children, started_children

# No deadline: CI machines are slow and shared, and a property's speed is
# not what it tests.  Speed is measured by benchmarks/, never here.
settings.register_profile(
    "weft", deadline=None, suppress_health_check=[HealthCheck.too_slow], max_examples=200
)
settings.load_profile("weft")


@pytest.fixture
def children() -> Iterator[Children]:
    """Child processes for the test, each killed by its PID when it ends."""
    with started_children() as made:
        yield made
