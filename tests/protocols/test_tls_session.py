"""The TLS session alone: no transport, no clock, two sessions handing bytes to each other.

The session (``weft.protocols.tls._session``) is what the TLS layer runs; these
tests drive it with nothing else, so each one shows what the session itself
does with bytes in and calls made, and that its transition table is what it
does.
"""

from __future__ import annotations

import re
import ssl
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.support.tls import HOSTNAME, certificates, client_context, server_context
from weft.protocols.errors import WeftError
from weft.protocols.tls import TLSError, TLSHandshakeError, TLSStateError, TLSTruncatedError
from weft.protocols.tls._layer import LayerState
from weft.protocols.tls._session import (
    TRANSITIONS,
    ApplicationData,
    CloseNotifyReceived,
    HandshakeComplete,
    SendData,
    SessionFailed,
    SessionInput,
    SessionState,
    StreamTruncated,
    TLSEvent,
    TLSSession,
)

S = SessionState


def sessions(client_ctx: ssl.SSLContext | None = None) -> tuple[TLSSession, TLSSession]:
    client = TLSSession(client_ctx or client_context(), server_side=False, server_hostname=HOSTNAME)
    server = TLSSession(server_context(), server_side=True)
    return client, server


def step(me: TLSSession, peer: TLSSession) -> tuple[list[TLSEvent], bool]:
    """One next_events() of ``me``, its SendData handed to ``peer``: the other
    events, and whether bytes moved."""
    others: list[TLSEvent] = []
    moved = False
    for event in me.next_events():
        if isinstance(event, SendData):
            peer.receive_data(event.data)
            moved = True
        else:
            others.append(event)
    return others, moved


def shuttle(client: TLSSession, server: TLSSession) -> tuple[list[TLSEvent], list[TLSEvent]]:
    """Run both sessions until no byte moves; the events each saw (SendData aside)."""
    seen: tuple[list[TLSEvent], list[TLSEvent]] = ([], [])
    for _ in range(50):
        client_events, client_moved = step(client, server)
        server_events, server_moved = step(server, client)
        seen[0].extend(client_events)
        seen[1].extend(server_events)
        if not (client_moved or server_moved or client_events or server_events):
            return seen
    raise AssertionError("the sessions never went quiet")


def connected() -> tuple[TLSSession, TLSSession]:
    client, server = sessions()
    client_events, server_events = shuttle(client, server)
    assert client_events == [HandshakeComplete()]
    assert server_events == [HandshakeComplete()]
    return client, server


def deliver(data: bytes, to: TLSSession) -> list[TLSEvent]:
    to.receive_data(data)
    return to.next_events()


# ------------------------------------------------------------------ handshake


def test_a_client_speaks_first_and_a_server_waits() -> None:
    """The client's first next_events() is its ClientHello, as SendData; a
    server with nothing received has nothing to say."""
    client, server = sessions()
    first = client.next_events()
    assert len(first) == 1
    assert isinstance(first[0], SendData)
    assert first[0].data[:1] == b"\x16"  # a handshake record
    assert server.next_events() == []
    assert client.state is S.HANDSHAKING
    assert server.state is S.HANDSHAKING


def test_two_sessions_complete_a_handshake_by_handing_each_other_bytes() -> None:
    """No transport at all: the sessions reach OPEN, each says HandshakeComplete
    once, and the session facts (certificate, version) are known."""
    client, server = connected()
    assert client.state is S.OPEN
    assert server.state is S.OPEN
    assert client.handshake_complete
    assert server.handshake_complete
    peercert = client.ssl_object.getpeercert()
    assert peercert is not None
    assert ("DNS", HOSTNAME) in peercert["subjectAltName"]
    assert client.ssl_object.version() in ("TLSv1.2", "TLSv1.3")
    assert server.context.verify_mode is ssl.CERT_NONE  # the context it was made from


def test_nothing_happens_until_next_events_and_held_bytes_are_counted() -> None:
    """receive_data only buffers: the bytes wait, counted, until next_events acts on them."""
    client, server = connected()
    ciphertext = client.send(b"later")
    server.receive_data(ciphertext)
    assert server.pending_ciphertext == len(ciphertext)
    assert server.next_events() == [ApplicationData(b"later")]
    assert server.pending_ciphertext == 0


# ------------------------------------------------------------------ data


def test_data_both_ways() -> None:
    """send() returns the ciphertext; the peer decrypts it into one ApplicationData."""
    client, server = connected()
    assert deliver(client.send(b"ping"), server) == [ApplicationData(b"ping")]
    assert deliver(server.send(memoryview(b"pong")), client) == [ApplicationData(b"pong")]
    big = bytes(range(256)) * 1024  # several records, one event
    assert deliver(client.send(bytearray(big)), server) == [ApplicationData(big)]


@settings(max_examples=25, deadline=None)
@given(cuts=st.lists(st.integers(min_value=1, max_value=300), min_size=1, max_size=20))
def test_any_chunking_of_the_records_gives_the_same_plaintext(cuts: list[int]) -> None:
    """However the ciphertext is cut, the plaintext is the same bytes, in order."""
    client, server = connected()
    ciphertext = client.send(b"a" * 3000) + client.send(b"b" * 100) + client.close()
    received: list[TLSEvent] = []
    position, index = 0, 0
    while position < len(ciphertext):
        size = cuts[index % len(cuts)]
        received.extend(deliver(ciphertext[position : position + size], server))
        position, index = position + size, index + 1
    data = b"".join(event.data for event in received if isinstance(event, ApplicationData))
    assert data == b"a" * 3000 + b"b" * 100
    assert received[-1] == CloseNotifyReceived()


# ------------------------------------------------------------------ closing


def test_close_notify_each_way_and_a_half_closed_session_still_sends() -> None:
    """close() sends close_notify: the peer hears CloseNotifyReceived and may
    still send; its own close() ends the session on both sides."""
    client, server = connected()
    assert deliver(client.close(), server) == [CloseNotifyReceived()]
    assert (client.state, server.state) == (S.WRITE_CLOSED, S.READ_CLOSED)
    assert deliver(server.send(b"answer"), client) == [ApplicationData(b"answer")]
    assert deliver(server.close(), client) == [CloseNotifyReceived()]
    assert (client.state, server.state) == (S.CLOSED, S.CLOSED)


def test_data_and_close_notify_in_one_read_come_in_order() -> None:
    """The last data and the close_notify behind it: ApplicationData, then CloseNotifyReceived."""
    client, server = connected()
    assert deliver(client.send(b"last") + client.close(), server) == [
        ApplicationData(b"last"),
        CloseNotifyReceived(),
    ]


def test_the_end_of_the_stream_without_close_notify_is_truncation() -> None:
    """receive_eof in OPEN: StreamTruncated (a TLSTruncatedError, saying why),
    and the session may still send; after the peer's close_notify it is nothing."""
    client, server = connected()
    [event] = server.receive_eof()
    assert isinstance(event, StreamTruncated)
    assert isinstance(event.error, TLSTruncatedError)
    assert "close_notify" in str(event.error)
    assert server.state is S.READ_CLOSED
    assert deliver(server.send(b"still"), client) == [ApplicationData(b"still")]

    client, server = connected()
    deliver(client.close(), server)
    assert server.receive_eof() == []


def test_the_end_of_the_stream_during_the_handshake_fails_it() -> None:
    """receive_eof before the handshake completes: SessionFailed with a TLSHandshakeError."""
    client, _server = sessions()
    client.next_events()
    [event] = client.receive_eof()
    assert isinstance(event, SessionFailed)
    assert isinstance(event.error, TLSHandshakeError)
    assert "during the TLS handshake" in str(event.error)
    assert client.state is S.HANDSHAKE_FAILED
    assert not client.handshake_complete


def test_bytes_after_the_peer_ended_are_dropped() -> None:
    """Once the peer's side ended, what still comes means nothing: not buffered, no event."""
    client, server = connected()
    deliver(client.close(), server)
    server.receive_data(b"\x17\x03\x03\x00\x05hello")
    assert server.pending_ciphertext == 0
    assert server.next_events() == []


# ------------------------------------------------------------------ failures


def test_a_bad_record_is_an_error_event_not_an_exception() -> None:
    """A record that fails its integrity check: an alert for the peer (SendData,
    first), then SessionFailed with a TLSError caused by the ssl error."""
    client, server = connected()
    record = bytearray(client.send(b"x" * 100))
    record[-1] ^= 0xFF  # one flipped bit in the record's tag
    events = deliver(bytes(record), server)
    assert isinstance(events[-1], SessionFailed)
    error = events[-1].error
    assert isinstance(error, TLSError)
    assert not isinstance(error, TLSHandshakeError)
    assert isinstance(error, WeftError)
    assert isinstance(error.__cause__, ssl.SSLError)
    assert all(isinstance(event, SendData) for event in events[:-1])
    assert server.state is S.FAILED
    assert server.handshake_complete  # it did, before the failure


def test_garbage_instead_of_a_client_hello_fails_the_handshake() -> None:
    """Bytes that are not TLS: SessionFailed(TLSHandshakeError) saying why."""
    _client, server = sessions()
    events = deliver(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", server)
    assert isinstance(events[-1], SessionFailed)
    assert isinstance(events[-1].error, TLSHandshakeError)
    assert str(events[-1].error).startswith("TLS handshake failed: ")
    assert server.state is S.HANDSHAKE_FAILED


def test_an_untrusted_certificate_fails_the_client_and_its_alert_tells_the_server() -> None:
    """The client refuses a certificate from an unknown CA (the verify message in
    the error); the alert it sends makes the server's handshake fail too."""
    client, server = sessions(client_context(certificates().other_ca))
    client_events, server_events = shuttle(client, server)
    assert isinstance(client_events[-1], SessionFailed)
    assert "certificate verify failed" in str(client_events[-1].error)
    assert isinstance(client_events[-1].error.__cause__, ssl.SSLCertVerificationError)
    assert isinstance(server_events[-1], SessionFailed)
    assert isinstance(server_events[-1].error, TLSHandshakeError)


# ------------------------------------------------------------- illegal calls


def test_sending_before_the_handshake_completes_is_an_illegal_call() -> None:
    """send() and close() during the handshake raise TLSStateError (a WeftError
    saying what was asked in which state), and change nothing."""
    client, _server = sessions()
    with pytest.raises(TLSStateError, match="cannot send application data when handshaking"):
        client.send(b"too soon")
    with pytest.raises(TLSStateError, match="cannot send close_notify when handshaking"):
        client.close()
    assert client.state is S.HANDSHAKING
    assert issubclass(TLSStateError, WeftError)


def test_closing_twice_and_sending_after_close_are_illegal_calls() -> None:
    """close() once; a second close() or a send() after it raises TLSStateError."""
    client, _server = connected()
    client.close()
    with pytest.raises(TLSStateError, match="write closed"):
        client.close()
    with pytest.raises(TLSStateError, match="write closed"):
        client.send(b"after close")
    assert client.state is S.WRITE_CLOSED


def test_a_failed_session_refuses_to_send() -> None:
    """After a SessionFailed, send() and close() raise TLSStateError."""
    client, server = connected()
    record = bytearray(client.send(b"y"))
    record[-1] ^= 0xFF
    deliver(bytes(record), server)
    with pytest.raises(TLSStateError, match="failed"):
        server.send(b"no")
    with pytest.raises(TLSStateError, match="failed"):
        server.close()


# ---------------------------------------------------------- the transition table


def test_the_table_is_complete_and_closed() -> None:
    """Every state has a row, every move lands on a state, every state can be
    reached from HANDSHAKING, and the terminal states take only the end of the stream."""
    assert set(TRANSITIONS) == set(SessionState)
    reached = {S.HANDSHAKING}
    frontier = [S.HANDSHAKING]
    while frontier:
        for target in TRANSITIONS[frontier.pop()].values():
            assert isinstance(target, SessionState)
            if target not in reached:
                reached.add(target)
                frontier.append(target)
    assert reached == set(SessionState)
    for terminal in (S.HANDSHAKE_FAILED, S.CLOSED, S.FAILED):
        assert TRANSITIONS[terminal] == {SessionInput.EOF: terminal}
    # The end of the stream is legal everywhere: it is the peer's doing, not a call.
    assert all(SessionInput.EOF in moves for moves in TRANSITIONS.values())


def test_the_table_allows_what_tls_allows() -> None:
    """Application data goes out only between the handshake and our close_notify
    (after the peer's too: TLS 1.3's half-close), and close_notify once."""
    for move in (SessionInput.SEND, SessionInput.SEND_CLOSE):
        assert {state for state, moves in TRANSITIONS.items() if move in moves} == {S.OPEN, S.READ_CLOSED}
    assert TRANSITIONS[S.OPEN][SessionInput.SEND] is S.OPEN
    assert TRANSITIONS[S.READ_CLOSED][SessionInput.SEND] is S.READ_CLOSED
    assert TRANSITIONS[S.OPEN][SessionInput.SEND_CLOSE] is S.WRITE_CLOSED
    assert TRANSITIONS[S.READ_CLOSED][SessionInput.SEND_CLOSE] is S.CLOSED
    assert TRANSITIONS[S.WRITE_CLOSED][SessionInput.CLOSE_NOTIFY] is S.CLOSED


def _in_state(state: SessionState) -> TLSSession:
    """A real session driven into ``state``."""
    if state is S.HANDSHAKING:
        return sessions()[0]
    if state is S.HANDSHAKE_FAILED:
        _client, server = sessions()
        deliver(b"not TLS at all, not even close....", server)
        return server
    client, server = connected()
    if state is S.WRITE_CLOSED:
        client.close()
    elif state is S.READ_CLOSED:
        deliver(server.close(), client)
    elif state is S.CLOSED:
        deliver(server.close(), client)
        client.close()
    elif state is S.FAILED:
        record = bytearray(server.send(b"z"))
        record[-1] ^= 0xFF
        deliver(bytes(record), client)
    assert client.state is state
    return client


@pytest.mark.parametrize("state", list(SessionState), ids=lambda state: state.name)
def test_the_calls_do_what_the_table_says(state: SessionState) -> None:
    """In each state, reached by real bytes: send(), close() and receive_eof()
    are legal exactly where the table has a move for them, and land where it says."""
    calls: list[tuple[Callable[[TLSSession], object], SessionInput]] = [
        (lambda session: session.send(b"data"), SessionInput.SEND),
        (lambda session: session.close(), SessionInput.SEND_CLOSE),
        (lambda session: session.receive_eof(), SessionInput.EOF),
    ]
    for call, move in calls:
        session = _in_state(state)
        if move in TRANSITIONS[state]:
            call(session)
            assert session.state is TRANSITIONS[state][move]
        else:
            with pytest.raises(TLSStateError):
                call(session)
            assert session.state is state


# ------------------------------------------------------------------- the docs

DOC = Path(__file__).resolve().parents[2] / "docs" / "tls.md"


def test_the_docs_example_of_two_sessions_runs() -> None:
    """docs/tls.md's example (two sessions, a handshake, a ping) runs as written."""
    blocks = re.findall(r"```python\n(.*?)```", DOC.read_text(), re.S)
    [code] = [block for block in blocks if "TLSSession(" in block]
    scope: dict[str, Any] = {}
    exec(compile(code, "docs/tls.md session example", "exec"), scope)
    assert scope["server"].state is S.OPEN


def test_the_docs_tables_name_every_state() -> None:
    """docs/tls.md has a row for every SessionState and every LayerState."""
    rows = set(re.findall(r"^\| `([A-Z_]+)` \|", DOC.read_text(), re.M))
    assert {state.name for state in SessionState} <= rows
    assert {state.name for state in LayerState} <= rows
