"""`weft serve http`, run for real and talked to by curl and Python's http.client."""

from __future__ import annotations

import http.client
import os
import re
import shlex
import shutil
import ssl
import subprocess
from pathlib import Path

import pytest

from tests.support import TIMEOUT
from tests.support.drivers import SERVES
from tests.support.processes import WEFT, Child, Children, stop
from tests.support.tls import HOSTNAME, certificates

# curl is on every CI image we use; if it is missing these tests fail, not skip.
CURL = shutil.which("curl") or "curl"


@pytest.fixture
def site(tmp_path: Path) -> Path:
    root = tmp_path / "site"
    (root / "sub").mkdir(parents=True)
    (root / "hello.txt").write_bytes(b"hello, http\n")
    (root / "big.bin").write_bytes(os.urandom(3 * 1024 * 1024))
    (root / "sub" / "note.md").write_bytes(b"# note\n")
    (tmp_path / "secret.txt").write_bytes(b"outside\n")
    return root


def curl(*args: str) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        [CURL, "--silent", "--show-error", "--max-time", str(TIMEOUT), *args],
        capture_output=True,
        timeout=TIMEOUT + 5,
        check=False,
    )


def serve_http(children: Children, root: Path, *extra: str) -> tuple[Child, int]:
    server = children.weft("serve", "http", "--root", str(root), "--port", "0", *extra)
    return server, server.port()


@pytest.mark.drivers(requires=SERVES)
def test_curl_fetches_files_over_one_connection(children: Children, site: Path, driver: str) -> None:
    """curl gets two files in one run, over one kept-alive connection, byte for byte."""
    server, port = serve_http(children, site, "--driver", driver)
    out = site.parent / "out"
    result = curl(
        "--write-out", "%{num_connects} ",
        f"http://127.0.0.1:{port}/hello.txt", "-o", str(out / "hello.txt"),
        f"http://127.0.0.1:{port}/big.bin", "-o", str(out / "big.bin"),
        "--create-dirs",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == [b"1", b"0"]  # the second reused the connection
    assert (out / "hello.txt").read_bytes() == b"hello, http\n"
    assert (out / "big.bin").read_bytes() == (site / "big.bin").read_bytes()
    assert stop(server) == 0


def test_the_ready_line_is_a_url_and_curl_resumes_a_download(children: Children, site: Path) -> None:
    """serve http says where it listens as a URL one can click; curl resumes
    a cut download with a Range (206) and revalidates with the ETag (304);
    each response is dated."""
    server = children.weft("serve", "http", "--root", str(site), "--port", "0")
    line = server.wait_for_stderr(r"^listening on http://127\.0\.0\.1:(?P<port>\d+)/$")
    url = f"{line.group(0).split()[-1]}big.bin"
    out = site.parent / "part.bin"
    out.write_bytes((site / "big.bin").read_bytes()[:1000])
    resumed = curl("-C", "-", "-o", str(out), "-w", "%{http_code}", url)
    assert resumed.stdout == b"206", resumed.stderr
    assert out.read_bytes() == (site / "big.bin").read_bytes()
    head = curl("-I", url).stdout.decode().lower()
    etag = head.split("etag: ", 1)[1].split("\r\n", 1)[0]
    assert "\r\ndate: " in head
    revalidated = curl("-o", "/dev/null", "-w", "%{http_code}", "-H", f"If-None-Match: {etag}", url)
    assert revalidated.stdout == b"304"
    assert stop(server) == 0


def test_the_access_log_is_on_stderr_unless_turned_off(children: Children, site: Path) -> None:
    """serve http logs each response as a Common Log Format line on stderr,
    as python -m http.server does; --no-access-log writes none."""
    server, port = serve_http(children, site)
    assert curl(f"http://127.0.0.1:{port}/hello.txt", f"http://127.0.0.1:{port}/missing").returncode == 0
    server.wait_for_stderr(r'"GET /missing HTTP/1\.1" 404 \d+$')
    assert stop(server) == 0
    log = [line for line in server.stderr.splitlines() if '"GET' in line]
    when = r"\[\d\d/\w{3}/\d{4}:\d\d:\d\d:\d\d \+0000\]"
    pattern = rf'^127\.0\.0\.1 - - {when} "GET /hello\.txt HTTP/1\.1" 200 12$'
    assert re.match(pattern, log[0]), log
    assert len(log) == 2

    quiet, port = serve_http(children, site, "--no-access-log")
    assert curl(f"http://127.0.0.1:{port}/hello.txt").stdout == b"hello, http\n"
    assert stop(quiet) == 0
    assert '"GET' not in quiet.stderr


def test_curl_head_and_conditional_get(children: Children, site: Path) -> None:
    """curl -I shows the headers; a conditional GET with the Last-Modified it saw is a 304."""
    server, port = serve_http(children, site)
    url = f"http://127.0.0.1:{port}/hello.txt"
    head = curl("-I", url)
    lines = head.stdout.decode().splitlines()
    assert lines[0] == "HTTP/1.1 200 OK"
    headers = dict(line.lower().split(": ", 1) for line in lines[1:] if ": " in line)
    assert headers["content-length"] == "12"
    assert headers["content-type"] == "text/plain"
    since = f"If-Modified-Since: {headers['last-modified']}"
    conditional = curl("-o", "/dev/null", "-w", "%{http_code}", "-H", since, url)
    assert conditional.stdout == b"304"
    assert stop(server) == 0


@pytest.mark.parametrize(
    ("path", "status"),
    [
        ("/../secret.txt", 403),
        ("/%2e%2e/secret.txt", 403),
        ("/sub/..%2f..%2fsecret.txt", 403),
        ("/..%5csecret.txt", 403),
        ("/nothing-here", 404),
    ],
)
def test_curl_path_traversal_is_refused(children: Children, site: Path, path: str, status: int) -> None:
    """curl --path-as-is sends the traversal unnormalised; the server refuses it."""
    server, port = serve_http(children, site)
    result = curl("--path-as-is", "-o", "-", "-w", "\n%{http_code}", f"http://127.0.0.1:{port}{path}")
    body, _, code = result.stdout.rpartition(b"\n")
    assert int(code) == status
    assert b"outside" not in body
    assert stop(server) == 0


def test_http_client_lists_a_directory_and_follows_its_links(children: Children, site: Path) -> None:
    """http.client: /sub redirects to /sub/, whose listing links to the file, which it serves."""
    server, port = serve_http(children, site)
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=TIMEOUT)
    conn.request("GET", "/sub")
    moved = conn.getresponse()
    moved.read()
    assert (moved.status, moved.getheader("location")) == (301, "/sub/")
    conn.request("GET", "/sub/")
    listing = conn.getresponse()
    page = listing.read().decode()
    assert listing.status == 200
    assert '<a href="note.md">note.md</a>' in page
    conn.request("GET", "/sub/note.md")
    note = conn.getresponse()
    assert note.read() == b"# note\n"
    conn.close()
    assert stop(server) == 0


def test_serve_http_defaults_to_the_current_directory(children: Children, site: Path) -> None:
    """Without --root, the directory the server was started in is served."""
    command = shlex.join([*WEFT, "serve", "http", "--port", "0"])
    server = children.start("sh", "-c", f"cd {shlex.quote(str(site))} && exec {command}")
    port = server.port()
    result = curl(f"http://127.0.0.1:{port}/hello.txt")
    assert result.stdout == b"hello, http\n"
    assert stop(server) == 0


def test_curl_over_tls(children: Children, site: Path) -> None:
    """serve http --tls: curl verifies the certificate and gets the file."""
    certs = certificates()
    server, port = serve_http(children, site, "--tls", "--cert", certs.cert_file, "--key", certs.key_file)
    resolve = f"{HOSTNAME}:{port}:127.0.0.1"
    result = curl("--cacert", certs.ca_file, "--resolve", resolve, f"https://{HOSTNAME}:{port}/hello.txt")
    assert result.returncode == 0, result.stderr
    assert result.stdout == b"hello, http\n"
    assert stop(server) == 0


def test_http_client_over_tls(children: Children, site: Path) -> None:
    """http.client's HTTPSConnection, verifying against the test CA, over keep-alive."""
    certs = certificates()
    server, port = serve_http(children, site, "--tls", "--cert", certs.cert_file, "--key", certs.key_file)
    context = ssl.create_default_context(cafile=certs.ca_file)
    conn = http.client.HTTPSConnection("127.0.0.1", port, timeout=TIMEOUT, context=context)
    for _ in range(3):
        conn.request("GET", "/hello.txt")
        response = conn.getresponse()
        assert response.read() == b"hello, http\n"
    conn.close()
    assert stop(server) == 0


def test_root_goes_only_with_http_and_must_exist(tmp_path: Path) -> None:
    """--root with another protocol is a usage error (2); a missing root is one line (2)."""
    run = [*WEFT, "serve", "echo", "--root", str(tmp_path), "--port", "0"]
    echo = subprocess.run(run, capture_output=True, timeout=TIMEOUT, check=False)
    assert echo.returncode == 2
    assert b"--root goes with serve http" in echo.stderr
    missing = [*WEFT, "serve", "http", "--root", str(tmp_path / "missing"), "--port", "0"]
    result = subprocess.run(missing, capture_output=True, timeout=TIMEOUT, check=False)
    assert result.returncode == 2
    assert result.stderr.decode().splitlines() == [f"weft: not a directory: {tmp_path / 'missing'}"]


def test_serve_http_over_stdio(site: Path) -> None:
    """--stdio works for http too: one request on stdin, the response on stdout."""
    result = subprocess.run(
        [*WEFT, "serve", "http", "--root", str(site), "--stdio"],
        input=b"GET /hello.txt HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        capture_output=True,
        timeout=TIMEOUT,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(b"HTTP/1.1 200 OK\r\n")
    assert result.stdout.endswith(b"\r\n\r\nhello, http\n")


def test_an_upload_over_the_limit_gets_its_413(children: Children, site: Path) -> None:
    """A 3 MB POST (over the 1 MiB default) gets its 413, from curl and from
    http.client, every time."""
    server, port = serve_http(children, site)
    for _ in range(3):
        result = curl(
            "-o", "/dev/null", "-w", "%{http_code}", "-H", "Expect:",
            "--data-binary", f"@{site / 'big.bin'}", f"http://127.0.0.1:{port}/hello.txt",
        )  # fmt: skip
        assert result.stdout == b"413", result.stderr
    # http.client sends the whole body before it reads the answer.
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=TIMEOUT)
    conn.request("POST", "/hello.txt", body=(site / "big.bin").read_bytes())
    assert conn.getresponse().status == 413
    conn.close()
    assert stop(server) == 0


@pytest.mark.drivers(requires=SERVES)
def test_over_max_connections_curl_gets_a_503_at_once(children: Children, site: Path, driver: str) -> None:
    """--max-connections 1 with one idle client in: curl is answered 503 with
    Retry-After (not left waiting), and is served once the idle client leaves."""
    import socket

    server, port = serve_http(children, site, "--driver", driver, "--max-connections", "1")
    # Accepted first (the kernel's queue is first come, first served): it holds the slot.
    with socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT):
        refused = curl("--include", f"http://127.0.0.1:{port}/hello.txt")
    assert refused.returncode == 0, refused.stderr
    head = refused.stdout.split(b"\r\n\r\n", 1)[0].lower()
    assert head.startswith(b"http/1.1 503 service unavailable")
    assert b"\r\nretry-after: 1" in head
    assert b"\r\nconnection: close" in head
    # The server may not have seen the idle client leave yet: retry as told (Retry-After).
    served = curl("--fail", "--retry", "5", f"http://127.0.0.1:{port}/hello.txt")
    assert (served.returncode, served.stdout) == (0, b"hello, http\n")
    assert stop(server) == 0
