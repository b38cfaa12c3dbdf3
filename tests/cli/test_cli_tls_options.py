"""TLS options on the ``weft`` command line: file errors that say which file
and what is wrong (one line, exit 2), mutual TLS, ALPN, and what
``connect --tls -v`` says about the session; with trustme's certificates."""

from __future__ import annotations

import builtins
import hashlib
import re
import ssl
import subprocess
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization

from tests.support import TIMEOUT
from tests.support.processes import WEFT, Children, stop
from tests.support.tls import HOSTNAME, certificates
from weft._cli import tls_options
from weft.protocols.errors import ArgumentError


def run(*args: str, stdin: bytes = b"") -> subprocess.CompletedProcess[bytes]:
    return subprocess.run([*WEFT, *args], input=stdin, capture_output=True, timeout=TIMEOUT, check=False)


def one_line(stderr: bytes) -> str:
    text = stderr.decode()
    assert "Traceback" not in text
    lines = text.splitlines()
    assert len(lines) == 1, lines
    return lines[0]


@pytest.fixture
def files(tmp_path: Path) -> dict[str, str]:
    """Good and bad PEM files, by what they are."""
    certs = certificates()
    made: dict[str, str] = {}

    def write(name: str, data: bytes) -> None:
        """Write ``data`` to a file named after ``name`` (dots where the key has underscores)."""
        path = tmp_path / name.replace("_", ".")
        path.write_bytes(data)
        made[name] = str(path)

    write("garbage", b"this is not a certificate\n")
    write("server_der", ssl.PEM_cert_to_DER_cert(certs.server.cert_chain_pems[0].bytes().decode()))
    write("client_cert", b"".join(blob.bytes() for blob in certs.client.cert_chain_pems))
    write("client_key", certs.client.private_key_pem.bytes())
    write(
        "other_client",
        b"".join(blob.bytes() for blob in certs.other_ca.issue_cert("x@weft.test").cert_chain_pems),
    )
    key = serialization.load_pem_private_key(certs.server.private_key_pem.bytes(), password=None)
    write(
        "encrypted_key",
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.BestAvailableEncryption(b"secret"),
        ),
    )
    return made


def serve_tls(*extra: str) -> list[str]:
    certs = certificates()
    return [
        "serve",
        "echo",
        "--port",
        "0",
        "--tls",
        "--cert",
        certs.cert_file,
        "--key",
        certs.key_file,
        *extra,
    ]


# ---------------------------------------------------------- file errors


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--cert", "{missing}"], "--cert {missing}: no such file"),
        (["--cert", "{dir}"], "--cert {dir}: is a directory, not a file"),
        (["--cert", "{garbage}"], "--cert {garbage}: not a PEM certificate: no '-----BEGIN ...' block"),
        (
            ["--cert", "{server_der}", "--key", "{key}"],
            "--cert {server_der}: not a PEM certificate: no '-----BEGIN ...' block (it looks like DER: "
            "convert it with openssl x509 -inform der -in {server_der} -out {server_der}.pem)",
        ),
        (["--cert", "{cert}"], "--cert {cert}: holds no private key: give --key FILE"),
        (
            ["--cert", "{cert}", "--key", "{garbage}"],
            "--key {garbage}: not a PEM private key: no '-----BEGIN ...' block",
        ),
        (["--cert", "{cert}", "--key", "{missing}"], "--key {missing}: no such file"),
        (
            ["--cert", "{cert}", "--key", "{client_key}"],
            "--key {client_key} does not match the certificate in --cert {cert}",
        ),
        (
            ["--cert", "{cert}", "--key", "{encrypted_key}"],
            "--key {encrypted_key}: the private key is encrypted, and weft does not ask for passphrases: "
            "decrypt it (openssl pkey -in {encrypted_key} -out plain.key)",
        ),
        (
            ["--cert", "{cert}", "--key", "{key}", "--client-ca", "{garbage}"],
            "--client-ca {garbage}: not a PEM CA certificate file: no '-----BEGIN ...' block",
        ),
    ],
    ids=lambda value: value if isinstance(value, str) else " ".join(value),
)
def test_serve_names_the_file_and_the_problem(
    files: dict[str, str], tmp_path: Path, args: list[str], message: str
) -> None:
    """Each bad --cert, --key or --client-ca: one line naming the option, the
    file and what is wrong, exit 2, before anything listens."""
    certs = certificates()
    names = {**files, "missing": str(tmp_path / "missing.pem"), "dir": str(tmp_path)}
    names |= {"cert": certs.cert_file, "key": certs.key_file}
    result = run("serve", "echo", "--port", "0", "--tls", *(arg.format_map(names) for arg in args))
    assert (result.returncode, result.stdout) == (2, b"")
    assert one_line(result.stderr) == "weft: " + message.format_map(names)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--cafile", "{missing}"], "--cafile {missing}: no such file"),
        (
            ["--cafile", "{garbage}"],
            "--cafile {garbage}: not a PEM CA certificate file: no '-----BEGIN ...' block",
        ),
        (
            ["--client-cert", "{client_cert}"],
            "--client-cert {client_cert}: holds no private key: give --client-key FILE",
        ),
        (
            ["--client-cert", "{client_cert}", "--client-key", "{key}"],
            "--client-key {key} does not match the certificate in --client-cert {client_cert}",
        ),
    ],
    ids=lambda value: value if isinstance(value, str) else " ".join(value),
)
def test_connect_names_the_file_and_the_problem(
    files: dict[str, str], tmp_path: Path, args: list[str], message: str
) -> None:
    """The same for connect's --cafile and --client-cert/--client-key, before connecting."""
    names = {**files, "missing": str(tmp_path / "missing.pem"), "key": certificates().key_file}
    result = run("connect", "127.0.0.1", "9", "--tls", *(arg.format_map(names) for arg in args))
    assert (result.returncode, result.stdout) == (2, b"")
    assert one_line(result.stderr) == "weft: " + message.format_map(names)


def test_an_unreadable_file_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    """A file that cannot be read (permission denied; the tests may run as
    root, who reads anything, so open() is made to refuse here)."""
    real_open = builtins.open

    def refusing(path: Any, *args: Any, **kwargs: Any) -> Any:
        if str(path) == "/srv/cert.pem":
            raise PermissionError(13, "Permission denied", path)
        return real_open(path, *args, **kwargs)

    monkeypatch.setattr(builtins, "open", refusing)
    with pytest.raises(ArgumentError) as raised:
        tls_options.check_certificate("--cert", "/srv/cert.pem", "--key", None)
    assert str(raised.value) == "--cert /srv/cert.pem: cannot be read (permission denied)"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["serve", "echo", "--client-ca", "ca.pem"], "--client-ca goes with --tls"),
        (
            ["serve", "echo", "--alpn", "h2", "--require-client-cert"],
            "--require-client-cert, --alpn go with --tls",
        ),
        (
            [*serve_tls("--require-client-cert")],
            "--require-client-cert needs --client-ca FILE (the CAs that sign client certificates)",
        ),
        (["connect", "127.0.0.1", "9", "--client-cert", "c.pem"], "--client-cert goes with --tls"),
        (
            ["connect", "127.0.0.1", "9", "--tls", "--client-key", "k.pem"],
            "--client-key goes with --client-cert",
        ),
        (
            ["connect", "127.0.0.1", "9", "--tls", "--alpn", "h2,,x"],
            "argument --alpn: --alpn 'h2,,x': protocol names are 1 to 255 ASCII bytes, comma-separated",
        ),
    ],
    ids=lambda value: value if isinstance(value, str) else " ".join(value),
)
def test_tls_options_that_do_not_fit(args: list[str], message: str) -> None:
    """Options without what they need: one usage line, exit 2."""
    result = run(*args)
    assert result.returncode == 2
    assert message in one_line(result.stderr)


# ------------------------------------------------------------- mutual TLS


def test_mutual_tls(children: Children, files: dict[str, str]) -> None:
    """--require-client-cert --client-ca: a client presenting a certificate of
    that CA is served (and -v on the server names it); one presenting none, or
    one of another CA, is refused at the handshake (exit 1), and the server goes on."""
    certs = certificates()
    server = children.weft(*serve_tls("--client-ca", certs.ca_file, "--require-client-cert", "-v"))
    port = str(server.port())
    trust = ["--tls", "--cafile", certs.ca_file, "--server-name", HOSTNAME]
    client = ["--client-cert", files["client_cert"], "--client-key", files["client_key"]]
    served = run("connect", "127.0.0.1", port, *trust, *client, stdin=b"with a certificate\n")
    assert (served.returncode, served.stdout, served.stderr) == (0, b"with a certificate\n", b"")
    server.wait_for_stderr(r"client certificate O=trustme")
    refused = run("connect", "127.0.0.1", port, *trust, stdin=b"without\n")
    # In TLS 1.3 the client's handshake is over before the server checks its
    # certificate: the client hears the alert, or a broken pipe if it was writing.
    assert (refused.returncode, refused.stdout) == (1, b"")
    assert re.search(r"certificate required|Broken pipe|reset", one_line(refused.stderr))
    server.wait_for_stderr(r"TLS handshake failed: .*(certificate|CERTIFICATE)")
    stranger = ["--client-cert", files["other_client"], "--client-key", files["client_key"]]
    wrong = run("connect", "127.0.0.1", port, *trust, *stranger, stdin=b"x\n")
    assert wrong.returncode == 2  # its key is not the stranger certificate's: caught before connecting
    assert stop(server) == 0


def test_an_optional_client_certificate(children: Children) -> None:
    """--client-ca without --require-client-cert: a client without a certificate is served too."""
    certs = certificates()
    server = children.weft(*serve_tls("--client-ca", certs.ca_file))
    result = run(
        "connect", "127.0.0.1", str(server.port()), "--tls", "--cafile", certs.ca_file,
        "--server-name", HOSTNAME, stdin=b"anonymous\n",
    )  # fmt: skip
    assert (result.returncode, result.stdout) == (0, b"anonymous\n")
    assert stop(server) == 0


# ------------------------------------------------------- ALPN, and -v


def test_connect_verbose_describes_the_session(children: Children) -> None:
    """connect --tls -v prints, on stderr, the version and cipher, the ALPN
    result, and the certificate's subject, issuer, names and expiry."""
    certs = certificates()
    server = children.weft(*serve_tls("--alpn", "h2,http/1.1"))
    result = run(
        "connect", "127.0.0.1", str(server.port()), "--tls", "--cafile", certs.ca_file,
        "--server-name", HOSTNAME, "--alpn", "http/1.1", "-v", stdin=b"hi\n",
    )  # fmt: skip
    assert (result.returncode, result.stdout) == (0, b"hi\n")
    lines = result.stderr.decode().splitlines()
    assert any(
        re.fullmatch(r"weft: TLS with 127\.0\.0\.1:\d+: TLSv1\.[23], cipher \S+ \(\d+-bit\)", line)
        for line in lines
    ), lines
    assert "weft: TLS ALPN: http/1.1" in lines
    assert any(line.startswith("weft: TLS peer certificate subject: O=trustme") for line in lines), lines
    assert any(
        line.startswith("weft: TLS peer certificate issuer: O=trustme") and "Testing CA" in line
        for line in lines
    )
    assert "weft: TLS peer certificate names: DNS:weft.test, IP Address:127.0.0.1" in lines
    assert "weft: TLS peer certificate expires: 3000-01-01 00:00:00 UTC" in lines
    assert stop(server) == 0


def test_alpn_without_agreement(children: Children) -> None:
    """A client offering a protocol the server does not accept: no ALPN, said
    so on both sides, and the session goes on."""
    certs = certificates()
    server = children.weft(*serve_tls("--alpn", "h2", "-v"))
    result = run(
        "connect", "127.0.0.1", str(server.port()), "--tls", "--cafile", certs.ca_file,
        "--server-name", HOSTNAME, "--alpn", "x-weft", "-v", stdin=b"hi\n",
    )  # fmt: skip
    assert (result.returncode, result.stdout) == (0, b"hi\n")
    assert "weft: TLS ALPN: none agreed (we offered x-weft)" in result.stderr.decode().splitlines()
    server.wait_for_stderr(r"; ALPN: none agreed \(we accept h2\); no client certificate$")
    assert stop(server) == 0


def test_insecure_shows_the_fingerprint(children: Children) -> None:
    """--insecure -v: the certificate was not verified, so its SHA-256 fingerprint is shown instead."""
    server = children.weft(*serve_tls())
    result = run("connect", "127.0.0.1", str(server.port()), "--tls", "--insecure", "-v", stdin=b"hi\n")
    assert result.returncode == 0
    der = ssl.PEM_cert_to_DER_cert(certificates().server.cert_chain_pems[0].bytes().decode())
    digest = hashlib.sha256(der).hexdigest().upper()
    expected = ":".join(digest[i : i + 2] for i in range(0, len(digest), 2))
    assert (
        f"weft: TLS peer certificate not verified, SHA-256 fingerprint {expected}"
        in result.stderr.decode().splitlines()
    )
    assert stop(server) == 0


def test_without_verbose_the_session_is_not_described(children: Children) -> None:
    """Without -v, nothing on stderr."""
    certs = certificates()
    server = children.weft(*serve_tls())
    result = run(
        "connect", "127.0.0.1", str(server.port()), "--tls", "--cafile", certs.ca_file,
        "--server-name", HOSTNAME, stdin=b"hi\n",
    )  # fmt: skip
    assert (result.returncode, result.stderr) == (0, b"")
    assert stop(server) == 0
