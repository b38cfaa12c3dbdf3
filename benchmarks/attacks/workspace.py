"""The files a run serves, a secret beside them, and TLS certificates.

One temporary directory per run::

    site/small.txt        a small file (the probes' GET)
    site/smuggled.txt     SMUGGLED: a smuggled request that is answered shows it
    site/marker.txt       MARKER: the request sent after an answer, to see the connection is still open
    site/big.bin          2 GiB, sparse (truncate): costs no disk
    site/sub/note.txt
    site/link-out         a symbolic link to ../secret.txt
    secret.txt            TOP-SECRET: no request may ever show it
"""

from __future__ import annotations

import functools
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from .settings import GiB

SERVER_NAME = "attack.weft.test"
SECRET = b"TOP-SECRET"
SMUGGLED = b"SMUGGLED"
MARKER = b"MARKER"
BIG_SIZE = 2 * GiB


@dataclass(frozen=True)
class Certificates:
    """A CA and a server certificate for SERVER_NAME, as files."""

    ca_file: str
    cert_file: str
    key_file: str


class Workspace:
    """The run's directory; removed by :meth:`remove`."""

    def __init__(self) -> None:
        self.directory = Path(tempfile.mkdtemp(prefix="weft-attack-"))
        self.site = self.directory / "site"
        (self.site / "sub").mkdir(parents=True)
        (self.site / "small.txt").write_bytes(b"small\n")
        (self.site / "smuggled.txt").write_bytes(SMUGGLED + b"\n")
        (self.site / "marker.txt").write_bytes(MARKER + b"\n")
        (self.site / "sub" / "note.txt").write_bytes(b"note\n")
        with open(self.site / "big.bin", "wb") as big:
            big.truncate(BIG_SIZE)  # sparse: 2 GiB of zeros on no disk
        (self.directory / "secret.txt").write_bytes(SECRET + b"\n")
        os.symlink("../secret.txt", self.site / "link-out")

    @functools.cached_property
    def certificates(self) -> Certificates:
        """Made on first use with trustme (a test dependency)."""
        import trustme

        ca = trustme.CA()
        cert = ca.issue_cert(SERVER_NAME)
        folder = self.directory / "tls"
        folder.mkdir()
        made = Certificates(str(folder / "ca.pem"), str(folder / "server.pem"), str(folder / "server.key"))
        ca.cert_pem.write_to_path(made.ca_file)
        cert.cert_chain_pems[0].write_to_path(made.cert_file)
        for pem in cert.cert_chain_pems[1:]:
            pem.write_to_path(made.cert_file, append=True)
        cert.private_key_pem.write_to_path(made.key_file)
        return made

    def remove(self) -> None:
        """Delete everything."""
        shutil.rmtree(self.directory, ignore_errors=True)
