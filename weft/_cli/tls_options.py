"""TLS on the command line: contexts from the options, errors that name the
file and the problem, and what ``connect --tls -v`` says about a session.

Every file option is checked before the context is built, so a mistake is
one line naming the option, the file and what is wrong with it (exit 2),
never ``[SSL] PEM lib (_ssl.c:3905)``:

* missing, a directory, unreadable;
* not PEM (with a hint when it looks like DER);
* no private key (neither in ``--key`` nor in the certificate file), or an
  encrypted one (weft never prompts for a passphrase);
* a key that does not match the certificate;
* a CA file with no certificate in it.
"""

from __future__ import annotations

import datetime
import hashlib
import ssl
from collections.abc import Sequence
from typing import Any

from weft.drivers._core.socket_binding import format_address
from weft.protocols.errors import ArgumentError
from weft.protocols.tls import client_context, server_context

__all__ = [
    "check_ca_file",
    "check_certificate",
    "cli_client_context",
    "cli_server_context",
    "parse_alpn",
    "session_lines",
]

_CERTIFICATE = b"-----BEGIN CERTIFICATE-----"
_TRUSTED_CERTIFICATE = b"-----BEGIN TRUSTED CERTIFICATE-----"
_PRIVATE_KEY = b"PRIVATE KEY-----"  # BEGIN PRIVATE KEY, RSA PRIVATE KEY, EC PRIVATE KEY...
_ENCRYPTED = (b"-----BEGIN ENCRYPTED PRIVATE KEY-----", b"Proc-Type: 4,ENCRYPTED")


def _read(option: str, path: str) -> bytes:
    """The file's bytes, or an ArgumentError naming the option, the file and the problem."""
    try:
        with open(path, "rb") as file:
            return file.read()
    except FileNotFoundError:
        problem = "no such file"
    except IsADirectoryError:
        problem = "is a directory, not a file"
    except PermissionError:
        problem = "cannot be read (permission denied)"
    except OSError as exc:
        problem = f"cannot be read ({exc.strerror or exc})"
    raise ArgumentError(f"{option} {path}: {problem}")


def _not_pem(option: str, path: str, data: bytes, what: str) -> ArgumentError:
    hint = ""
    if data[:1] == b"\x30":  # an ASN.1 SEQUENCE: DER, PEM's binary form
        hint = f" (it looks like DER: convert it with openssl x509 -inform der -in {path} -out {path}.pem)"
    return ArgumentError(f"{option} {path}: not a PEM {what}: no '-----BEGIN ...' block{hint}")


def check_certificate(cert_option: str, cert: str, key_option: str, key: str | None) -> None:
    """Check a certificate chain and its key (in ``key``, or in ``cert`` when it is None)."""
    chain = _read(cert_option, cert)
    if _CERTIFICATE not in chain:
        raise _not_pem(cert_option, cert, chain, "certificate")
    if key is None:
        if _PRIVATE_KEY not in chain:
            raise ArgumentError(f"{cert_option} {cert}: holds no private key: give {key_option} FILE")
        key_option, key, key_data = cert_option, cert, chain
    else:
        key_data = _read(key_option, key)
        if _PRIVATE_KEY not in key_data:
            raise _not_pem(key_option, key, key_data, "private key")
    if any(marker in key_data for marker in _ENCRYPTED):
        raise ArgumentError(
            f"{key_option} {key}: the private key is encrypted, and weft does not ask for passphrases: "
            f"decrypt it (openssl pkey -in {key} -out plain.key)"
        )


def check_ca_file(option: str, path: str) -> None:
    """Check a file of trusted CA certificates."""
    data = _read(option, path)
    if _CERTIFICATE not in data and _TRUSTED_CERTIFICATE not in data:
        raise _not_pem(option, path, data, "CA certificate file")


def _load_error(
    exc: ssl.SSLError, cert_option: str, cert: str, key_option: str, key: str | None
) -> ArgumentError:
    if exc.reason == "KEY_VALUES_MISMATCH":
        where = f"{key_option} {key}" if key is not None else f"the key in {cert_option} {cert}"
        return ArgumentError(f"{where} does not match the certificate in {cert_option} {cert}")
    return ArgumentError(f"{cert_option} {cert}: cannot be loaded: {exc.reason or exc}")


def parse_alpn(text: str) -> list[str]:
    """``h2,http/1.1`` -> ``["h2", "http/1.1"]``; ArgumentError for an empty or over-long name."""
    names = [name.strip() for name in text.split(",")]
    for name in names:
        if not name or len(name.encode()) > 255 or not name.isascii():
            raise ArgumentError(f"--alpn {text!r}: protocol names are 1 to 255 ASCII bytes, comma-separated")
    return names


def cli_server_context(
    cert: str,
    key: str | None,
    *,
    client_ca: str | None = None,
    require_client_cert: bool = False,
    alpn: Sequence[str] = (),
) -> ssl.SSLContext:
    """A server context from ``serve``'s options, every file checked first.

    With ``client_ca``, clients that present a certificate must present one
    signed by a CA in it; ``require_client_cert`` refuses clients that
    present none (mutual TLS), where without it a certificate is optional
    (nginx's ``ssl_verify_client optional``).
    """
    check_certificate("--cert", cert, "--key", key)
    if client_ca is not None:
        check_ca_file("--client-ca", client_ca)
    try:
        context = server_context(cert, key, alpn_protocols=alpn)
    except ssl.SSLError as exc:
        raise _load_error(exc, "--cert", cert, "--key", key) from exc
    if client_ca is not None:
        try:
            context.load_verify_locations(cafile=client_ca)
        except ssl.SSLError as exc:
            raise ArgumentError(f"--client-ca {client_ca}: cannot be loaded: {exc.reason or exc}") from exc
        context.verify_mode = ssl.CERT_REQUIRED if require_client_cert else ssl.CERT_OPTIONAL
    return context


def cli_client_context(
    *,
    cafile: str | None = None,
    insecure: bool = False,
    client_cert: str | None = None,
    client_key: str | None = None,
    alpn: Sequence[str] = (),
) -> ssl.SSLContext:
    """A client context from ``connect``'s options, every file checked first."""
    if cafile is not None:
        check_ca_file("--cafile", cafile)
    if client_cert is not None:
        check_certificate("--client-cert", client_cert, "--client-key", client_key)
    try:
        return client_context(
            cafile=cafile, insecure=insecure, certfile=client_cert, keyfile=client_key, alpn_protocols=alpn
        )
    except ssl.SSLError as exc:
        if client_cert is None:
            raise ArgumentError(f"--cafile {cafile}: cannot be loaded: {exc.reason or exc}") from exc
        raise _load_error(exc, "--client-cert", client_cert, "--client-key", client_key) from exc


# ------------------------------------------------------------- describing

_SHORT_NAMES = {
    "commonName": "CN",
    "organizationName": "O",
    "organizationalUnitName": "OU",
    "countryName": "C",
    "stateOrProvinceName": "ST",
    "localityName": "L",
    "emailAddress": "emailAddress",
}


def _name(rdns: Any) -> str:
    """An X.509 name from ``getpeercert()`` as ``O=..., CN=...``."""
    parts = [f"{_SHORT_NAMES.get(key, key)}={value}" for rdn in rdns for key, value in rdn]
    return ", ".join(parts) or "(empty)"


def session_lines(transport: Any, *, alpn: Sequence[str] = (), server_side: bool = False) -> list[str]:
    """What a TLS session is, line by line, as ``openssl s_client`` says it in spirit.

    The protocol version and cipher, the ALPN result, and the peer
    certificate's subject, issuer, names and expiry (or, when it was not
    verified, its SHA-256 fingerprint: Python decodes only verified ones).
    """
    peer = transport.get_extra_info("peername")
    where = format_address(peer) if peer is not None else "the peer"
    version = transport.get_extra_info("version") or "?"
    cipher = transport.get_extra_info("cipher")
    cipher_text = f"{cipher[0]} ({cipher[2]}-bit)" if cipher else "?"
    lines = [f"TLS with {where}: {version}, cipher {cipher_text}"]
    agreed = transport.get_extra_info("alpn_protocol")
    if agreed is not None:
        lines.append(f"TLS ALPN: {agreed}")
    elif alpn:
        ours = "we accept" if server_side else "we offered"
        lines.append(f"TLS ALPN: none agreed ({ours} {', '.join(alpn)})")
    else:
        lines.append("TLS ALPN: none (not configured)" if server_side else "TLS ALPN: not offered")
    certificate = transport.get_extra_info("peercert")
    if certificate:
        lines.append(f"TLS peer certificate subject: {_name(certificate.get('subject', ()))}")
        lines.append(f"TLS peer certificate issuer: {_name(certificate.get('issuer', ()))}")
        names = ", ".join(f"{kind}:{value}" for kind, value in certificate.get("subjectAltName", ()))
        if names:
            lines.append(f"TLS peer certificate names: {names}")
        if "notAfter" in certificate:
            expires = datetime.datetime.fromtimestamp(
                ssl.cert_time_to_seconds(certificate["notAfter"]), datetime.UTC
            )
            lines.append(f"TLS peer certificate expires: {expires:%Y-%m-%d %H:%M:%S} UTC")
    else:
        binary = transport.get_extra_info("peercert_binary")
        if binary:
            fingerprint = hashlib.sha256(binary).hexdigest().upper()
            pairs = ":".join(fingerprint[i : i + 2] for i in range(0, len(fingerprint), 2))
            lines.append(f"TLS peer certificate not verified, SHA-256 fingerprint {pairs}")
        else:
            lines.append("TLS peer certificate: none")
    return lines
