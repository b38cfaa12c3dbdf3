"""Run the C load generator (``loadgen.c``) and read its report."""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path


class LoadgenError(RuntimeError):
    """A load generator run failed (the server stalled, closed, or echoed wrong bytes)."""


@dataclass(frozen=True)
class LoadResult:
    """What one run measured over its window (seconds of CPU; None where not measured)."""

    messages: int
    seconds: float
    #: utime+stime from /proc/PID/stat (10 ms ticks on most kernels).
    server_cpu_ticks: float | None
    #: The scheduler's run time summed over /proc/PID/task/*/schedstat (nanoseconds).
    server_cpu_ns: float | None
    #: The client's own CPU (getrusage); all of the window when it spins.
    client_cpu: float
    #: With ``spin``, the wall time of the client's polls that found work and
    #: of that work: its real cost, since spinning fills the rest.
    client_busy: float | None
    #: Seconds each side was runnable but waited for its core (another task
    #: had it): how much the rest of the machine disturbed the run.
    server_waited: float | None
    client_waited: float | None

    @property
    def server_cpu(self) -> float | None:
        """The server's CPU time over the window: the nanosecond figure where there is one."""
        return self.server_cpu_ns if self.server_cpu_ns is not None else self.server_cpu_ticks

    @property
    def client_work(self) -> float:
        """The client's CPU time spent on messages (its busy time when spinning)."""
        return self.client_busy if self.client_busy is not None else self.client_cpu

    @property
    def rate(self) -> float:
        """Messages per second."""
        return self.messages / self.seconds


def run(
    binary: Path,
    port: int,
    *,
    connections: int,
    size: int,
    duration: float | None = None,
    warmup: float = 0.0,
    count: int | None = None,
    server_pid: int | None = None,
    cpu: int | None = None,
    spin: bool = False,
    timeout: float = 120.0,
) -> LoadResult:
    """Run one load against ``127.0.0.1:port`` and parse its report.

    Give ``duration`` (seconds, measured after ``warmup`` seconds) or
    ``count`` (messages per connection, all measured), not both.  With
    ``server_pid`` the server's CPU over the window is read from /proc.
    ``spin`` polls without sleeping, so the server never has to wake the
    client.  Raises LoadgenError if the run fails.
    """
    command = [str(binary), "--port", str(port), "--connections", str(connections), "--size", str(size)]
    if duration is not None:
        command += ["--duration", str(duration), "--warmup", str(warmup)]
    if count is not None:
        command += ["--count", str(count)]
    if server_pid is not None:
        command += ["--server-pid", str(server_pid)]
    if cpu is not None:
        command += ["--cpu", str(cpu)]
    if spin:
        command.append("--spin")
    try:
        result = subprocess.run(command, capture_output=True, text=True, timeout=timeout, check=False)
    except subprocess.TimeoutExpired as exc:  # subprocess.run has killed it
        raise LoadgenError(f"the load generator did not finish in {timeout:g} s") from exc
    if result.returncode != 0:
        raise LoadgenError(result.stderr.strip() or f"the load generator exited with {result.returncode}")
    fields = dict(item.split("=", 1) for item in result.stdout.split())

    def optional(name: str) -> float | None:
        value = float(fields[name])
        return None if value < 0 else value

    return LoadResult(
        messages=int(fields["messages"]),
        seconds=float(fields["seconds"]),
        server_cpu_ticks=optional("server_cpu"),
        server_cpu_ns=optional("server_runtime"),
        client_cpu=float(fields["client_cpu"]),
        client_busy=optional("client_busy"),
        server_waited=optional("server_waited"),
        client_waited=optional("client_waited"),
    )
