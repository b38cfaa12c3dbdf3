"""What the attack suite assumes of weft, each in one place, and its two scales.

Some of what the cases check arrives with features that are being built
alongside the suite (issue 9): a bound on connections with a quick "busy"
answer, an idle timeout on the blocking driver, a body deadline for HTTP.
Their names live here only, so that a rename is one edit.  A case that needs
a feature weft does not have yet fails, saying why (``weft serve`` refuses
the option, or the launcher notes a limit it had to leave out).
"""

from __future__ import annotations

from dataclasses import dataclass

MiB = 1024 * 1024
GiB = 1024 * MiB

# ------------------------------------------------------- weft's options

#: ``weft serve``'s bound on the connections served at once (every driver;
#: the blocking driver's pool).
MAX_CONNECTIONS_OPTION = "--max-connections"

#: ``weft serve``'s idle timeout per connection (the blocking driver).
IDLE_TIMEOUT_OPTION = "--idle-timeout"

#: ``weft serve``'s grace period on SIGTERM.
GRACE_OPTION = "--grace"

#: What a line protocol (echo, pub/sub) sends a client over the bound, before closing.
BUSY_LINE = b"ERR server busy"

#: What an HTTP server over its bound answers (with ``Retry-After``).
BUSY_STATUS = 503

#: The fields of ``weft.protocols.http.HTTPLimits`` the launcher shortens in
#: ``--fast`` runs.  ``body_timeout`` arrives with the HTTP hardening; a weft
#: whose HTTPLimits lacks a field runs without it, and the launcher says so
#: on stderr (the case then fails on its own figures).
SHORTENED_HTTP_LIMITS = ("head_timeout", "body_timeout")

#: The defaults the cases expect when run with plain ``weft serve`` (``--long``).
DEFAULT_HEAD_TIMEOUT = 60.0
DEFAULT_BODY_TIMEOUT = 60.0
DEFAULT_HANDSHAKE_TIMEOUT = 60.0
DEFAULT_GRACE = 5.0

#: How far behind a pub/sub subscriber may fall before it is dropped (weft's default).
PUBSUB_MAX_BACKLOG = 1 * MiB
#: The pub/sub limits (weft's defaults, arriving with the pub/sub hardening):
#: subscriptions per connection and topics per hub, each past it answered ``ERR``.
PUBSUB_MAX_SUBSCRIPTIONS = 1000
PUBSUB_MAX_TOPICS = 100_000


# --------------------------------------------------------------- scales


@dataclass(frozen=True)
class Scale:
    """How big and how long each attack is: ``FAST`` for CI-like runs, ``LONG`` for issue 9's sizes."""

    name: str
    #: Bytes sent (and echoed back) by the volume cases.
    volume_bytes: int
    #: Concurrent connections, one run each.
    crowds: tuple[int, ...]
    #: How soon every client of a crowd must be served or told "busy".
    answer_within: float
    #: Never-reading HTTP downloaders, echo senders and pub/sub subscribers.
    downloaders: int
    echo_hoarders: int
    slow_subscribers: int
    #: Seconds a never-reading attack is held while RSS is sampled and probes run.
    hold_seconds: float
    #: Probes (another client's small request) per never-reading attack, at
    #: most: a 99th percentile of fewer than 100 is the worst probe alone.
    probes: int
    #: Clients pipelining requests without reading, and for how long.
    pipeliners: int
    pipeline_seconds: float
    #: Connections per slowloris or held-body variant, and per TLS variant.
    slow_connections: int
    tls_connections: int
    #: The timeouts (head, body, TLS handshake) the server runs with:
    #: a number means the launcher's short timeouts, None weft's defaults.
    short_timeout: float | None
    #: Clients that reset while the server writes to them.
    resets: int
    #: The grace period of the SIGTERM case.
    grace: float
    #: Descriptor exhaustion: the server's RLIMIT_NOFILE, the clients, how long it is watched.
    nofile: int
    descriptor_clients: int
    descriptor_seconds: float
    #: Pool exhaustion: the server's --max-connections.
    pool_size: int
    #: The hypothesis profile the fuzz case runs the test suite's fuzzers
    #: with (tests/conftest.py: "weft" 200 examples a property, "long" 20,000).
    fuzz_profile: str

    def timeout(self, default: float) -> float:
        """The timeout the server runs with: the short one, or weft's ``default``."""
        return default if self.short_timeout is None else self.short_timeout


FAST = Scale(
    name="fast",
    volume_bytes=64 * MiB,
    crowds=(500,),
    answer_within=5.0,
    downloaders=200,
    echo_hoarders=50,
    slow_subscribers=10,
    hold_seconds=4.0,
    probes=200,
    pipeliners=10,
    pipeline_seconds=6.0,
    slow_connections=20,
    tls_connections=20,
    short_timeout=2.0,
    resets=100,
    grace=1.0,
    nofile=64,
    descriptor_clients=200,
    descriptor_seconds=3.0,
    pool_size=8,
    fuzz_profile="weft",
)

LONG = Scale(
    name="long",
    volume_bytes=1 * GiB,
    crowds=(1000, 5000),
    answer_within=5.0,
    downloaders=1000,
    echo_hoarders=200,
    slow_subscribers=20,
    hold_seconds=10.0,
    probes=500,
    pipeliners=10,
    pipeline_seconds=10.0,
    slow_connections=20,
    tls_connections=20,
    short_timeout=None,
    resets=100,
    grace=DEFAULT_GRACE,
    nofile=64,
    descriptor_clients=200,
    descriptor_seconds=10.0,
    pool_size=64,
    fuzz_profile="long",
)

SCALES = {scale.name: scale for scale in (FAST, LONG)}

# ------------------------------------------------------------- targets

#: Server memory growth allowed for 1,000 never-reading HTTP downloaders
#: (issue 9).  The fast scale (200) is held to the same bound, not a fifth
#: of it: the blocking driver's two threads per served connection cost
#: about 45 KiB each, a fixed price its pool (256) caps, so 1,000
#: downloaders cost it no more than 256 do (11.5 MiB measured).
RSS_BUDGET_PER_1000_DOWNLOADERS = 32 * MiB
#: Server memory growth allowed for the other never-reading attacks and the floods.
RSS_BUDGET = 32 * MiB
#: What one echo client that sends without end and never reads may cost the
#: server: the promise is the write buffer's high-water mark (64 KiB) plus
#: one read, and asyncio and uvloop read up to 256 KiB at a time (weft's own
#: drivers 64 KiB), plus the connection's own objects (and, on the blocking
#: driver, its two threads).
RSS_PER_ECHO_HOARDER = 384 * 1024
#: What any never-reading echo attack may cost besides, whatever its size:
#: the allocator's arenas and the event loop's own growth once 50 or more
#: connections are busy at once (uvloop grew 13 to 19 MiB for 50 clients
#: and 30 MiB for 200, so the per-client figure alone is too tight at the
#: fast scale and loose at the long one).
RSS_ECHO_FIXED = 8 * MiB
#: A probe's answer under never-reading peers, and under a pipelining flood (99th percentile).
PROBE_P99 = 0.050
PIPELINE_PROBE_P99 = 0.100
#: How soon a client over a full pool must get the busy answer.
BUSY_WITHIN = 1.0
#: How soon service returns once a pooled client leaves.
RECOVERY_WITHIN = 3.0
#: How soon service returns once the clients that used up the descriptors leave
#: (the backlog they left behind is accepted and ended first).
DESCRIPTOR_RECOVERY_WITHIN = 5.0
#: Slack on every "cut at the timeout" target (scheduling, the kernel).
TIMEOUT_SLACK = 2.0
#: Descriptor exhaustion: log lines per second, and the server's share of a core.
LOG_LINES_PER_SECOND = 1.0
IDLE_CPU_SHARE = 0.10
