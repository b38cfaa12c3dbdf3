"""Shared test settings, the driver matrix, and the fixtures every process-level test uses."""

import os
from collections.abc import Iterator

import pytest
from hypothesis import HealthCheck, settings

from tests.support.drivers import driver_params
from tests.support.processes import Children, started_children
from weft.drivers import Runtime, open_runtime

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


# ----------------------------------------------------------- the driver matrix


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "drivers(requires=(), lacks=(), only=None, exclude=None): run the test once per registered driver "
        "offering every capability in requires (its `driver` argument; see tests/support/drivers.py)",
    )


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """A test (or module) marked ``drivers(...)`` that takes ``driver``, itself
    or through a fixture such as ``runtime``, runs once per selected driver."""
    marker = metafunc.definition.get_closest_marker("drivers")
    if marker is None or "driver" not in metafunc.fixturenames:
        return
    if marker.args:
        raise TypeError("the drivers mark takes keywords only: requires=, lacks=, only=, exclude=")
    metafunc.parametrize("driver", driver_params(**marker.kwargs))


@pytest.fixture
def runtime(driver: str) -> Iterator[Runtime]:
    """A new runtime of the test's driver (see the ``drivers`` mark), closed after the test."""
    made = open_runtime(driver)
    try:
        yield made
    finally:
        made.close()
