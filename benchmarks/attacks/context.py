"""What a case is, and what it is handed when it runs."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from .results import Figure
from .server import ServerProcess, Servers
from .settings import DEFAULT_HANDSHAKE_TIMEOUT, Scale
from .workspace import Workspace


@dataclass
class Attack:
    """One case's run on one driver: the scale, the files, and its servers."""

    driver: str
    scale: Scale
    workspace: Workspace
    servers: Servers
    #: Lines that explain a result (a failing malformed request...), shown under the table.
    notes: list[str]

    def http(self, *options: str) -> ServerProcess:
        """``weft serve http --root SITE`` on this driver."""
        return self.servers.weft("http", self.driver, "--root", str(self.workspace.site), *options)

    def echo(self, *options: str, nofile: int | None = None) -> ServerProcess:
        """``weft serve echo`` on this driver."""
        return self.servers.weft("echo", self.driver, *options, nofile=nofile)

    def pubsub(self, *options: str) -> ServerProcess:
        """``weft serve pubsub`` on this driver."""
        return self.servers.weft("pubsub", self.driver, *options)

    def tls_options(self) -> list[str]:
        """``--tls --cert FILE --key FILE`` with the run's certificate."""
        certificates = self.workspace.certificates
        return ["--tls", "--cert", certificates.cert_file, "--key", certificates.key_file]

    def timed_http(self) -> ServerProcess:
        """The HTTP server with the scale's timeouts: the launcher's short ones, or plain ``weft serve``."""
        if self.scale.short_timeout is None:
            return self.http()
        return self._launched("http", "--root", str(self.workspace.site))

    def timed_tls_echo(self) -> ServerProcess:
        """The TLS echo server with the scale's handshake timeout."""
        if self.scale.short_timeout is None:
            return self.echo(*self.tls_options())
        return self._launched("echo", *self.tls_options())

    def _launched(self, protocol: str, *options: str) -> ServerProcess:
        server = self.servers.launched(
            protocol, self.driver, *options, "--timeout", f"{self.scale.short_timeout:g}"
        )
        # "this weft's HTTPLimits has no body_timeout": why a case may fail.
        self.notes.extend(line for _when, line in server.lines() if line.startswith("launcher:"))
        return server

    def handshake_timeout(self) -> float:
        """The TLS handshake timeout the server runs with."""
        return self.scale.timeout(DEFAULT_HANDSHAKE_TIMEOUT)


@dataclass(frozen=True)
class Case:
    """One attack: its name, what it does, and the function that runs it."""

    name: str
    summary: str
    run: Callable[[Attack], list[Figure]]
    #: The drivers it applies to (None: every driver).
    drivers: tuple[str, ...] | None = None
    #: It does not depend on the driver: run it once, under the first one.
    once: bool = False

    def applies_to(self, driver: str) -> bool:
        """Whether it runs on ``driver``."""
        return self.drivers is None or driver in self.drivers
