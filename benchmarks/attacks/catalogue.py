"""Every attack, by name, in the order the suite runs them."""

from __future__ import annotations

import fnmatch
from collections.abc import Iterable

from . import crowds, fuzzing, hoarders, lifecycle, malformed, slow, tls_attacks, volume
from .context import Case

CASES: tuple[Case, ...] = (
    Case("volume", "1 GiB each way at once through echo, SHA-256 equal (fast: 64 MiB)", volume.volume),
    Case("volume-tls", "the same over TLS", volume.volume_tls),
    Case(
        "connections",
        "1,000 and 5,000 concurrent echo clients (fast: 500): served or told busy",
        crowds.connections,
    ),
    Case(
        "never-reading-echo",
        "echo clients that send and never read: RSS and a probe",
        hoarders.never_reading_echo,
    ),
    Case(
        "never-reading-pubsub",
        "subscribers that never read while another publishes: dropped, RSS, a probe",
        hoarders.never_reading_pubsub,
    ),
    Case(
        "never-reading-http",
        "1,000 clients (fast: 200) GET a 2 GiB file and never read: RSS, a probe",
        hoarders.never_reading_http,
    ),
    Case(
        "pipelining-flood",
        "10 clients pipeline GETs and never read: a probe, RSS, CPU",
        hoarders.pipelining_flood,
    ),
    Case(
        "malformed-http", f"{len(malformed.ROWS)} malformed and smuggling requests", malformed.malformed_http
    ),
    Case("slowloris", "heads trickled a byte a second: cut at the head timeout", slow.slowloris),
    Case("held-bodies", "bodies declared and never sent: cut by the body deadline", slow.held_bodies),
    Case(
        "tls-garbage", "garbage, a silent ClientHello, a truncated record: survives", tls_attacks.tls_garbage
    ),
    Case("resets-mid-write", "100 clients reset while the server writes to them", lifecycle.resets_mid_write),
    Case(
        "sigterm-mid-transfer",
        "SIGTERM during a download: refuse at once, finish for the grace, exit 0",
        lifecycle.sigterm_mid_transfer,
    ),
    Case(
        "descriptor-exhaustion",
        "RLIMIT_NOFILE 64 and 200 clients: quiet, idle, listening, recovering",
        crowds.descriptor_exhaustion,
    ),
    Case("pool-exhaustion", "--max-connections full: busy at once, service back", crowds.pool_exhaustion),
    Case(
        "idle-timeout", "idle connections cut at --idle-timeout", crowds.idle_timeout, drivers=("blocking",)
    ),
    Case("subscription-flood", "pub/sub subscriptions past the limits: ERR", hoarders.subscription_flood),
    Case(
        "fuzz",
        "every parser and the HTTP protocols fed hostile bytes (long: 20,000 examples a property)",
        fuzzing.fuzz,
        once=True,
    ),
)

BY_NAME = {case.name: case for case in CASES}


def select(patterns: Iterable[str]) -> list[Case]:
    """The cases matching any of ``patterns`` (names or globs), in catalogue order;
    KeyError for a pattern that matches none."""
    wanted: set[str] = set()
    for pattern in patterns:
        matched = {case.name for case in CASES if fnmatch.fnmatchcase(case.name, pattern)}
        if not matched:
            raise KeyError(pattern)
        wanted |= matched
    return [case for case in CASES if case.name in wanted]
