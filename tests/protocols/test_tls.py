"""The TLS layer on the memory driver: real handshakes, a fake clock, every byte in view."""

from __future__ import annotations

import ssl
import warnings
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.support.tls import HOSTNAME, certificates, client_context, server_context, tls_client, tls_server
from weft.drivers.testing import FakeClock, Pump, RecordingProtocol, connect, connect_pair
from weft.protocols.errors import WeftError, WriteAfterEofError
from weft.protocols.framing import LineProtocol
from weft.protocols.tls import (
    TLSError,
    TLSHandshakeError,
    TLSHandshakeTimeoutError,
    TLSProtocol,
    TLSTruncatedError,
)
from weft.protocols.tls import client_context as weft_client_context
from weft.protocols.tls import server_context as weft_server_context
from weft.protocols.tls._layer import LAYER_TRANSITIONS, LayerState
from weft.protocols.tls._session import SessionState

KIB = 1024


def pair(
    client: RecordingProtocol | None = None,
    server: RecordingProtocol | None = None,
    *,
    client_options: dict[str, Any] | None = None,
    server_options: dict[str, Any] | None = None,
) -> tuple[Pump, RecordingProtocol, RecordingProtocol]:
    client = client or RecordingProtocol()
    server = server or RecordingProtocol()
    pump = connect_pair(
        tls_client(client, **(client_options or {})), tls_server(server, **(server_options or {}))
    )
    return pump, client, server


def lost(protocol: RecordingProtocol) -> BaseException | None:
    events = [event for event in protocol.events if event[0] == "connection_lost"]
    assert len(events) == 1, protocol.events
    return events[0][1]  # type: ignore[no-any-return]


# ------------------------------------------------------------------ handshake


def test_a_handshake_then_data_both_ways() -> None:
    """Client and server complete a real handshake and exchange data."""
    pump, client, server = pair()
    pump.run()
    client.transport.write(b"ping")
    pump.run()
    server.transport.write(b"pong")
    pump.run()
    assert server.received == b"ping"
    assert client.received == b"pong"


def test_the_session_facts_are_offered_as_extra_info() -> None:
    """peercert, cipher, version, ALPN and the ssl object are in get_extra_info, and
    other names (peername, clock) come from the transport below."""
    server_ctx = server_context()
    server_ctx.set_alpn_protocols(["h2", "http/1.1"])
    client_ctx = client_context()
    client_ctx.set_alpn_protocols(["http/1.1"])
    client, server = RecordingProtocol(), RecordingProtocol()
    pump = connect_pair(tls_client(client, client_ctx), tls_server(server, server_ctx))
    assert client.transport.get_extra_info("peercert") is None  # not yet
    pump.run()
    info = client.transport.get_extra_info
    assert ("DNS", HOSTNAME) in info("peercert")["subjectAltName"]
    assert info("version") in ("TLSv1.2", "TLSv1.3")
    assert info("cipher")[1] in ("TLSv1.2", "TLSv1.3")
    assert info("alpn_protocol") == "http/1.1"
    assert server.transport.get_extra_info("alpn_protocol") == "http/1.1"
    assert isinstance(info("ssl_object"), ssl.SSLObject)
    assert isinstance(info("sslcontext"), ssl.SSLContext)
    assert info("peercert_binary")[:1] == b"\x30"  # DER
    assert info("peername") == ("memory", "server")
    assert info("clock") is not None
    assert server.transport.get_extra_info("peercert") is None  # no client certificate asked for


def test_writes_before_the_handshake_are_held_and_sent_in_order() -> None:
    """The application may write at once: its writes go out after the handshake, in order."""
    pump, client, server = pair()
    client.transport.write(b"one ")
    client.transport.writelines([b"two ", bytearray(b"three ")])
    client.transport.write(memoryview(b"four"))
    assert client.transport.get_write_buffer_size() >= 18  # held, not lost
    pump.run()
    assert server.received == b"one two three four"


@settings(max_examples=25, deadline=None)
@given(sizes=st.lists(st.integers(min_value=1, max_value=700), min_size=1, max_size=40))
def test_any_chunking_of_the_ciphertext_gives_the_same_plaintext(sizes: list[int]) -> None:
    """However the byte stream is cut (handshake and records alike), the same bytes arrive."""
    pump, client, server = pair()
    payload = bytes(range(256)) * 8
    client.transport.write(payload)
    for step in range(100_000):
        size = sizes[step % len(sizes)]
        moved = pump.deliver("client", size) | pump.deliver("server", size)
        if not moved:
            break
    assert server.received == payload


def test_the_on_handshake_callback_runs_once_the_session_is_up() -> None:
    """on_handshake is called with the transport once the peer certificate is known."""
    seen: list[object] = []
    client = RecordingProtocol()
    pump = connect_pair(
        tls_client(client, on_handshake=lambda t: seen.append(t.get_extra_info("peercert") is not None)),
        tls_server(RecordingProtocol()),
    )
    assert seen == []
    pump.run()
    assert seen == [True]


def test_a_client_needs_a_server_hostname_when_its_context_checks_names() -> None:
    """No server_hostname with check_hostname on is an ArgumentError, at once."""
    with pytest.raises(ValueError, match="server_hostname"):
        TLSProtocol(RecordingProtocol(), client_context(), server_side=False)


# ------------------------------------------------------------- bad handshakes


def test_an_untrusted_certificate_fails_on_both_sides() -> None:
    """A server certificate from an unknown CA: the client's error says verification
    failed, with the ssl module's error as the cause; the server hears of it too."""
    client, server = RecordingProtocol(), RecordingProtocol()
    other = client_context(certificates().other_ca)
    pump = connect_pair(tls_client(client, other), tls_server(server))
    client.transport.write(b"never sent")
    pump.run()
    exc = lost(client)
    assert isinstance(exc, TLSHandshakeError)
    assert "certificate verify failed" in str(exc)
    assert isinstance(exc.__cause__, ssl.SSLCertVerificationError)
    assert isinstance(lost(server), TLSHandshakeError)
    assert server.received == b""


def test_an_expired_certificate_is_refused() -> None:
    """A certificate past its notAfter fails the client's handshake, saying so."""
    client = RecordingProtocol()
    expired = server_context(certificates().expired)
    pump = connect_pair(tls_client(client), tls_server(RecordingProtocol(), expired))
    pump.run()
    exc = lost(client)
    assert isinstance(exc, TLSHandshakeError)
    assert "expired" in str(exc)


def test_a_wrong_hostname_is_refused() -> None:
    """A certificate for another name fails the client's handshake, naming the mismatch."""
    client = RecordingProtocol()
    pump = connect_pair(
        tls_client(client, server_hostname="elsewhere.test"), tls_server(RecordingProtocol())
    )
    pump.run()
    exc = lost(client)
    assert isinstance(exc, TLSHandshakeError)
    assert "elsewhere.test" in str(exc) or "mismatch" in str(exc).lower()


def test_garbage_instead_of_a_client_hello_fails_the_server_handshake() -> None:
    """Bytes that are not TLS get a TLSHandshakeError (a WeftError) on the server,
    and the connection closes after sending the peer an alert."""
    server = RecordingProtocol()
    conn = connect(tls_server(server))
    conn.deliver(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    conn.clock.advance(0)
    exc = lost(server)
    assert isinstance(exc, TLSHandshakeError)
    assert isinstance(exc, WeftError)
    assert conn.eof_written  # closed, not left hanging
    assert conn.written[:1] in (b"", b"\x15")  # nothing, or a TLS alert record


def test_a_peer_that_stops_mid_handshake_times_out() -> None:
    """A peer that never finishes the handshake: TLSHandshakeTimeoutError after
    handshake_timeout on the transport's clock, and the transport is aborted."""
    server = RecordingProtocol()
    conn = connect(tls_server(server, handshake_timeout=10.0))
    conn.clock.advance(9.9)
    assert not conn.closed
    conn.clock.advance(0.2)
    exc = lost(server)
    assert isinstance(exc, TLSHandshakeTimeoutError)
    assert isinstance(exc, TimeoutError)
    assert conn.closed


def test_the_default_handshake_timeout_is_asyncios() -> None:
    """Without an option the handshake may take 60 s, as in asyncio, and no longer."""
    server = RecordingProtocol()
    conn = connect(tls_server(server))
    conn.clock.advance(59.9)
    assert not conn.closed
    conn.clock.advance(0.2)
    assert isinstance(lost(server), TLSHandshakeTimeoutError)


def test_a_peer_that_closes_during_the_handshake() -> None:
    """An EOF before the handshake completes is a TLSHandshakeError, not a hang."""
    client = RecordingProtocol()
    conn = connect(tls_client(client))
    assert conn.written.startswith(b"\x16")  # a ClientHello went out
    conn.deliver_eof()
    conn.clock.advance(0)
    exc = lost(client)
    assert isinstance(exc, TLSHandshakeError)
    assert "during the TLS handshake" in str(exc)


def test_a_reset_during_the_handshake_is_a_handshake_error_caused_by_the_reset() -> None:
    """A reset mid-handshake: TLSHandshakeError whose cause is the ConnectionResetError."""
    client = RecordingProtocol()
    conn = connect(tls_client(client))
    conn.reset()
    exc = lost(client)
    assert isinstance(exc, TLSHandshakeError)
    assert isinstance(exc.__cause__, ConnectionResetError)


# --------------------------------------------------------------------- closing


def test_close_sends_close_notify_and_both_ends_finish_cleanly() -> None:
    """close(): the peer hears eof_received, answers, and both sides lose the
    connection with no error; data written before close() arrives first."""
    pump, client, server = pair()
    pump.run()
    client.transport.write(b"last words")
    client.transport.close()
    assert client.transport.is_closing()
    pump.run()
    assert server.received == b"last words"
    assert ("eof_received",) in server.events
    assert lost(server) is None
    assert lost(client) is None


def test_the_layer_moves_along_its_table_and_the_session_along_its_own() -> None:
    """HANDSHAKING, OPEN, CLOSING at close() (our close_notify out: the session is
    WRITE_CLOSED), then CLOSED and LOST once the peer answers; the peer's layer
    closes when its application does not keep the session open."""
    client_app, server_app = RecordingProtocol(), RecordingProtocol()
    client, server = tls_client(client_app), tls_server(server_app)
    pump = connect_pair(client, server)
    assert client.state is LayerState.HANDSHAKING
    pump.run()
    assert (client.state, server.state) == (LayerState.OPEN, LayerState.OPEN)
    assert client.session.state is SessionState.OPEN
    client_app.transport.close()
    assert (client.state, client.session.state) == (LayerState.CLOSING, SessionState.WRITE_CLOSED)
    pump.run()
    assert (client.state, server.state) == (LayerState.LOST, LayerState.LOST)
    assert (client.session.state, server.session.state) == (SessionState.CLOSED, SessionState.CLOSED)
    assert set(LAYER_TRANSITIONS) == set(LayerState)
    assert LAYER_TRANSITIONS[LayerState.LOST] == frozenset()  # the end: nothing follows


def test_close_gives_up_waiting_for_a_silent_peer_after_close_timeout() -> None:
    """A peer that never answers close_notify cannot hold the connection open:
    the transport below closes after close_timeout (a known Twisted hang)."""
    pump, client, _server = pair(client_options={"close_timeout": 3.0})
    pump.run()
    pump.stall("server")  # the server's host stops reading: no answer will come
    client.transport.close()
    pump.run()
    assert not pump.client_transport.is_closing()
    pump.clock.advance(3.0)
    assert pump.client_transport.is_closing()
    pump.unstall("server")
    pump.run()
    assert lost(client) is None


def test_close_before_the_handshake_completes_aborts() -> None:
    """close() during the handshake aborts: nothing held is sent, the transport is dropped."""
    pump, client, server = pair()
    client.transport.write(b"held")
    client.transport.close()
    pump.run()
    assert server.received == b""
    assert lost(client) is None
    assert isinstance(lost(server), (TLSHandshakeError, ConnectionError))


def test_an_eof_without_close_notify_is_reported_as_truncation() -> None:
    """The byte stream ends with no close_notify: the application hears TLSTruncatedError."""
    pump, client, server = pair()
    pump.run()
    server.transport.write(b"partial")
    pump.run()
    pump.server_transport.write_eof()  # below TLS: a bare TCP FIN
    pump.run()
    assert client.received == b"partial"
    exc = lost(client)
    assert isinstance(exc, TLSTruncatedError)
    assert "close_notify" in str(exc)
    assert isinstance(exc, ConnectionError)


def test_truncation_can_be_taken_as_a_plain_eof() -> None:
    """With truncation_is_eof=True an unannounced end is eof_received, then a clean close."""
    pump, client, _server = pair(client_options={"truncation_is_eof": True})
    pump.run()
    pump.server_transport.write_eof()
    pump.run()
    assert ("eof_received",) in client.events
    assert lost(client) is None


def test_abort_drops_everything_at_once() -> None:
    """abort(): no close_notify, the peer sees a reset or truncation, and we hear no error."""
    pump, client, server = pair()
    pump.run()
    client.transport.abort()
    pump.run()
    assert lost(client) is None
    assert isinstance(lost(server), (ConnectionError, TLSError))


def test_write_eof_half_closes_and_the_peer_can_still_answer() -> None:
    """write_eof() sends close_notify; the peer hears eof_received, may answer, and
    closes; the half-closed side still receives the answer."""
    client = RecordingProtocol()
    server = RecordingProtocol(keep_open_on_eof=True)
    pump, client, server = pair(client, server)
    pump.run()
    assert client.transport.can_write_eof()
    client.transport.write(b"question")
    client.transport.write_eof()
    with pytest.raises(WriteAfterEofError):
        client.transport.write(b"more")
    pump.run()
    assert ("eof_received",) in server.events
    server.transport.write(b"answer")
    server.transport.close()
    pump.run()
    assert client.received == b"answer"
    assert ("eof_received",) in client.events
    assert lost(client) is None
    assert lost(server) is None


def test_writes_after_close_are_discarded() -> None:
    """write() after close() does nothing and raises nothing, like every weft transport."""
    pump, client, server = pair()
    pump.run()
    client.transport.close()
    client.transport.write(b"ignored")
    pump.run()
    assert server.received == b""


# --------------------------------------------------------------- flow control


def test_a_peer_that_does_not_read_pauses_the_writer_and_reading_resumes_it() -> None:
    """Ciphertext piling up below pauses the application; draining resumes it."""
    pump, client, server = pair()
    pump.run()
    pump.stall("server")
    for _ in range(10):
        client.transport.write(b"x" * (16 * KIB))
    assert ("pause_writing",) in client.events
    assert client.transport.get_write_buffer_size() > 64 * KIB
    pump.unstall("server")
    pump.run()
    assert client.events.count(("resume_writing",)) == 1
    assert len(server.received) == 160 * KIB


def test_held_writes_over_the_high_water_mark_pause_until_the_handshake() -> None:
    """Writes held for the handshake count too: over the mark, pause_writing; after
    the handshake sends them, resume_writing."""
    pump, client, server = pair()
    client.transport.set_write_buffer_limits(high=1000)
    client.transport.write(b"y" * 1500)
    assert client.events[-1] == ("pause_writing",)
    pump.run()
    assert client.events[-1] == ("resume_writing",)
    assert server.received == b"y" * 1500


def test_pause_reading_holds_plaintext_until_resume() -> None:
    """While the application has paused reading, nothing is delivered; resume
    delivers what was held, in order."""
    pump, client, server = pair()
    pump.run()
    server.transport.pause_reading()
    assert not server.transport.is_reading()
    client.transport.write(b"held for later")
    pump.run()
    assert server.received == b""
    server.transport.resume_reading()
    pump.run()
    assert server.received == b"held for later"



class PausedFromTheStart(RecordingProtocol):
    """A server application that holds its reading from ``connection_made`` on
    (one waiting for a free slot before it reads a request, say)."""

    def connection_made(self, transport: Any) -> None:
        super().connection_made(transport)
        transport.pause_reading()


def test_a_pause_made_in_connection_made_holds_plaintext_but_not_the_handshake() -> None:
    """The application hears connection_made before the handshake (as in
    Twisted); pausing there holds only what it would be handed.  The handshake
    completes on both sides, the client's data waits, and resume delivers it."""
    handshakes: list[str] = []
    client, server = RecordingProtocol(), PausedFromTheStart()
    pump = connect_pair(
        tls_client(client, on_handshake=lambda _: handshakes.append("client")),
        tls_server(server, on_handshake=lambda _: handshakes.append("server")),
    )
    client.transport.write(b"sent while the server waits")
    pump.run()
    assert sorted(handshakes) == ["client", "server"]
    assert server.received == b""
    assert not server.transport.is_reading()
    server.transport.resume_reading()
    pump.run()
    assert server.received == b"sent while the server waits"


def test_a_pause_during_the_handshake_does_not_let_it_time_out() -> None:
    """A server paused from connection_made on, and never resumed, still
    completes its handshake: the handshake deadline does not end it."""
    client, server = RecordingProtocol(), PausedFromTheStart()
    clock = FakeClock()
    pump = connect_pair(
        tls_client(client), tls_server(server, handshake_timeout=5.0), clock=clock
    )
    pump.run()
    clock.advance(10.0)
    pump.run()
    assert all(event[0] != "connection_lost" for event in server.events), server.events
    assert server.transport.get_extra_info("version") in ("TLSv1.2", "TLSv1.3")


# --------------------------------------------------------- client certificates


def test_a_server_can_require_a_client_certificate() -> None:
    """Mutual TLS: a client with a certificate from the trusted CA gets in and the
    server sees it; a client without one is refused."""
    certs = certificates()
    server_ctx = server_context()
    server_ctx.verify_mode = ssl.CERT_REQUIRED
    certs.ca.configure_trust(server_ctx)
    with_cert = client_context()
    certs.client.configure_cert(with_cert)
    client, server = RecordingProtocol(), RecordingProtocol()
    pump = connect_pair(tls_client(client, with_cert), tls_server(server, server_ctx))
    client.transport.write(b"hi")
    pump.run()
    assert server.received == b"hi"
    subject_alt = server.transport.get_extra_info("peercert")["subjectAltName"]
    assert ("email", "client@weft.test") in subject_alt

    client, server = RecordingProtocol(), RecordingProtocol()
    pump = connect_pair(tls_client(client), tls_server(server, server_ctx))
    client.transport.write(b"hi")
    pump.run()
    assert server.received == b""
    assert isinstance(lost(server), TLSHandshakeError)


def test_the_server_sees_the_name_the_client_asked_for() -> None:
    """SNI: the server context's sni_callback hears the client's server_hostname."""
    names: list[str | None] = []
    server_ctx = server_context()
    server_ctx.sni_callback = lambda obj, name, ctx: names.append(name)
    pump = connect_pair(tls_client(RecordingProtocol()), tls_server(RecordingProtocol(), server_ctx))
    pump.run()
    assert names == [HOSTNAME]


def test_the_context_helpers_have_secure_defaults() -> None:
    """client_context verifies certificates and names, both require TLS 1.2 at least,
    and insecure=True is the only way to turn verification off."""
    certs = certificates()
    client = weft_client_context()
    assert client.verify_mode == ssl.CERT_REQUIRED
    assert client.check_hostname
    assert client.minimum_version == ssl.TLSVersion.TLSv1_2
    insecure = weft_client_context(insecure=True)
    assert insecure.verify_mode == ssl.CERT_NONE
    server = weft_server_context(certs.cert_file, certs.key_file, alpn_protocols=["http/1.1"])
    assert server.minimum_version == ssl.TLSVersion.TLSv1_2
    app = RecordingProtocol()
    pump = connect_pair(
        TLSProtocol(
            app, weft_client_context(cafile=certs.ca_file), server_side=False, server_hostname=HOSTNAME
        ),
        TLSProtocol(RecordingProtocol(), server, server_side=True),
    )
    pump.run()
    assert app.transport.get_extra_info("version") is not None


def test_a_tls_1_1_only_peer_is_refused() -> None:
    """The helpers' minimum is TLS 1.2: a peer that offers only TLS 1.1 fails the handshake."""
    certs = certificates()
    old = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    old.check_hostname = False
    old.verify_mode = ssl.CERT_NONE
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # that is the point
        old.minimum_version = ssl.TLSVersion.TLSv1
        old.maximum_version = ssl.TLSVersion.TLSv1_1
    old.set_ciphers("DEFAULT:@SECLEVEL=0")
    server = RecordingProtocol()
    client = RecordingProtocol()
    pump = connect_pair(
        TLSProtocol(client, old, server_side=False),
        TLSProtocol(server, weft_server_context(certs.cert_file, certs.key_file), server_side=True),
    )
    pump.run()
    assert isinstance(lost(server), TLSHandshakeError)
    assert isinstance(lost(client), TLSHandshakeError)


# ----------------------------------------------------------------- the app side


def test_an_exception_in_the_application_ends_its_connection_with_it() -> None:
    """An application's data_received that raises ends that connection, with the exception."""

    class Fragile(RecordingProtocol):
        def data_received(self, data: bytes) -> None:
            raise RuntimeError("boom")

    fragile = Fragile()
    clock = FakeClock()
    pump = connect_pair(tls_client(RecordingProtocol()), tls_server(fragile), clock=clock)
    pump.run()
    pump.client.get_app_protocol().transport.write(b"x")
    with pytest.raises(RuntimeError, match="boom"):
        pump.run()  # the memory driver also hands it to the test
    exc = lost(fragile)
    assert isinstance(exc, RuntimeError)


def test_the_application_can_be_replaced_with_set_protocol() -> None:
    """set_protocol on the TLS transport sends later plaintext to the new protocol."""
    pump, client, server = pair()
    pump.run()
    replacement = RecordingProtocol()
    server.transport.set_protocol(replacement)
    assert server.transport.get_protocol() is replacement
    client.transport.write(b"for the new one")
    pump.run()
    assert replacement.received == b"for the new one"
    assert server.received == b""


# ------------------------------------------------------------------- start_tls


class StartTLSServer(LineProtocol):
    """Plain lines until STARTTLS, then lines inside TLS."""

    delimiter = b"\r\n"

    def __init__(self) -> None:
        super().__init__()
        self.lines: list[bytes] = []
        self.tls_transport: object = None

    def line_received(self, line: bytes) -> None:
        self.lines.append(line)
        if line == b"STARTTLS":
            self.send_line(b"GO AHEAD")
            self.tls_transport = self.start_tls(server_context(), server_side=True)
        else:
            self.send_line(b"ECHO " + line)


def test_start_tls_switches_in_place_with_the_client_hello_in_the_same_read() -> None:
    """STARTTLS and the ClientHello arrive in one chunk: the line parser hands the
    bytes after the switch to TLS, nothing is lost or read as a line, and lines
    continue inside TLS."""
    server = StartTLSServer()
    conn = connect(server)
    conn.deliver(b"HELLO\r\n")
    assert conn.take_written() == b"ECHO HELLO\r\n"

    # The client side, driven by hand: a TLS session over the test's pipe.
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    session = client_context().wrap_bio(incoming, outgoing, server_hostname=HOSTNAME)
    with pytest.raises(ssl.SSLWantReadError):
        session.do_handshake()
    conn.deliver(b"STARTTLS\r\n" + outgoing.read())  # one read holds both
    reply = conn.take_written()
    assert reply.startswith(b"GO AHEAD\r\n")
    incoming.write(reply[len(b"GO AHEAD\r\n") :])
    session.do_handshake()
    session.write(b"INSIDE\r\n")
    conn.deliver(outgoing.read())
    incoming.write(conn.take_written())
    assert session.read(100) == b"ECHO INSIDE\r\n"
    assert server.lines == [b"HELLO", b"STARTTLS", b"INSIDE"]
    assert server.transport is server.tls_transport


class PausingStartTLSServer(StartTLSServer):
    """Pauses reading at STARTTLS, before switching: the pause must carry over."""

    def line_received(self, line: bytes) -> None:
        if line == b"STARTTLS":
            self.pause_reading()
        super().line_received(line)


def test_a_pause_made_before_start_tls_is_lifted_on_the_new_transport() -> None:
    """A protocol that paused reading, then switched: the handshake goes on
    (the ClientHello that came along is answered), but the lines inside wait
    until it resumes reading on its new transport."""
    server = PausingStartTLSServer()
    conn = connect(server)
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    session = client_context().wrap_bio(incoming, outgoing, server_hostname=HOSTNAME)
    with pytest.raises(ssl.SSLWantReadError):
        session.do_handshake()
    conn.deliver(b"STARTTLS\r\n" + outgoing.read())
    written = conn.take_written()
    assert written.startswith(b"GO AHEAD\r\n")
    assert len(written) > len(b"GO AHEAD\r\n")  # the ServerHello: the handshake did not wait
    assert not server.transport.is_reading()
    incoming.write(written.removeprefix(b"GO AHEAD\r\n"))
    session.do_handshake()
    session.write(b"INSIDE\r\n")
    conn.deliver(outgoing.read())
    assert server.lines == [b"STARTTLS"]  # held while paused
    assert not conn.transport.is_reading()  # the session is up: the transport below pauses
    server.resume_reading()
    conn.clock.advance(0)
    assert server.transport.is_reading()
    incoming.write(conn.take_written())
    assert session.read(100) == b"ECHO INSIDE\r\n"
    assert server.lines == [b"STARTTLS", b"INSIDE"]


def test_a_record_cut_short_by_a_reset() -> None:
    """Half a record, then a reset: no partial plaintext is delivered, and the
    application hears the ConnectionResetError."""
    pump, client, server = pair()
    pump.run()
    client.transport.write(b"z" * 10_000)
    ciphertext_size = pump.client_transport.get_write_buffer_size()
    assert ciphertext_size > 10_000
    pump.deliver("client", ciphertext_size // 2)
    pump.reset()
    assert server.received == b""
    assert isinstance(lost(server), ConnectionResetError)
    assert isinstance(lost(client), ConnectionResetError)


def test_ciphertext_in_a_lent_buffer_goes_through_data_received() -> None:
    """``buffer_received`` (weft's reactor lends its read buffer to a protocol that
    has it) hands the bytes to ``data_received``, so a subclass overriding
    ``data_received`` sees the ciphertext whichever way it arrives."""
    seen: list[bytes] = []

    class Metered(TLSProtocol):
        def data_received(self, data: bytes | bytearray | memoryview) -> None:
            seen.append(bytes(data))
            super().data_received(data)

    server = Metered(RecordingProtocol(), server_context(), server_side=True)
    connect(server)
    server.buffer_received(memoryview(b"\x16\x03\x01"))
    assert seen == [b"\x16\x03\x01"]
