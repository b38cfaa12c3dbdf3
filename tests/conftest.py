"""Shared test settings."""

from hypothesis import HealthCheck, settings

# No deadline: CI machines are slow and shared, and a property's speed is
# not what it tests.  Speed is measured by benchmarks/, never here.
settings.register_profile(
    "weft", deadline=None, suppress_health_check=[HealthCheck.too_slow], max_examples=200
)
settings.load_profile("weft")
