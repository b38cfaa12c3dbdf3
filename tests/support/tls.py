"""Certificates and contexts for the TLS tests, from trustme (made once per run)."""

from __future__ import annotations

import atexit
import datetime
import functools
import shutil
import ssl
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path

import trustme

from weft.protocols.tls import TLSProtocol

HOSTNAME = "weft.test"


@dataclass(frozen=True)
class Certificates:
    """A CA, a server certificate for HOSTNAME signed by it, and the same as files."""

    ca: trustme.CA
    server: trustme.LeafCert
    client: trustme.LeafCert
    expired: trustme.LeafCert
    other_ca: trustme.CA
    directory: Path

    @property
    def ca_file(self) -> str:
        return str(self.directory / "ca.pem")

    @property
    def cert_file(self) -> str:
        return str(self.directory / "server.pem")

    @property
    def key_file(self) -> str:
        return str(self.directory / "server.key")


_made_once = threading.Lock()


def certificates() -> Certificates:
    """The run's certificates; the same for every caller, whatever the thread."""
    with _made_once:  # functools.cache alone could run twice in two threads
        return _certificates()


@functools.cache
def _certificates() -> Certificates:
    ca = trustme.CA()
    now = datetime.datetime.now(datetime.UTC)
    directory = Path(tempfile.mkdtemp(prefix="weft-tls-"))
    atexit.register(shutil.rmtree, directory, ignore_errors=True)
    server = ca.issue_cert(HOSTNAME, "127.0.0.1")
    ca.cert_pem.write_to_path(str(directory / "ca.pem"))
    server.cert_chain_pems[0].write_to_path(str(directory / "server.pem"))
    for extra in server.cert_chain_pems[1:]:
        extra.write_to_path(str(directory / "server.pem"), append=True)
    server.private_key_pem.write_to_path(str(directory / "server.key"))
    return Certificates(
        ca=ca,
        server=server,
        client=ca.issue_cert("client@weft.test"),
        expired=ca.issue_cert(
            HOSTNAME, not_before=now - datetime.timedelta(days=30), not_after=now - datetime.timedelta(days=1)
        ),
        other_ca=trustme.CA(),
        directory=directory,
    )


def server_context(leaf: trustme.LeafCert | None = None) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    (leaf or certificates().server).configure_cert(context)
    return context


def client_context(ca: trustme.CA | None = None) -> ssl.SSLContext:
    context = ssl.create_default_context()
    (ca or certificates().ca).configure_trust(context)
    return context


def tls_client(app: object, context: ssl.SSLContext | None = None, **options: object) -> TLSProtocol:
    options.setdefault("server_hostname", HOSTNAME)
    return TLSProtocol(app, context or client_context(), server_side=False, **options)  # type: ignore[arg-type]


def tls_server(app: object, context: ssl.SSLContext | None = None, **options: object) -> TLSProtocol:
    return TLSProtocol(app, context or server_context(), server_side=True, **options)  # type: ignore[arg-type]
