"""Reading what an HTTP server wrote, with h11 as the client: the yardstick of the HTTP tests."""

from __future__ import annotations

from dataclasses import dataclass, field

import h11


@dataclass
class Reply:
    """One response (or interim 1xx response) as a client saw it."""

    status: int
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""


def read_replies(data: bytes, *, methods: list[str] | None = None, eof: bool = False) -> list[Reply]:
    """Every complete response in ``data``, interim ones included, in order.

    ``methods`` names the request each response answers (``HEAD`` has no
    body); GET by default.  ``eof``: the server closed after ``data``.
    """
    methods = list(methods or [])
    conn = h11.Connection(h11.CLIENT)
    conn.receive_data(data)
    if eof:
        conn.receive_data(b"")
    replies: list[Reply] = []
    current: Reply | None = None
    while True:
        if conn.our_state is h11.IDLE:
            method = methods.pop(0) if methods else "GET"
            conn.send(h11.Request(method=method, target="/", headers=[("host", "test")]))
            conn.send(h11.EndOfMessage())
        try:
            event = conn.next_event()
        except h11.RemoteProtocolError:
            if conn.trailing_data[1]:  # the server closed after its last complete response
                return replies
            raise
        if event is h11.NEED_DATA or event is h11.PAUSED or isinstance(event, h11.ConnectionClosed):
            return replies
        if isinstance(event, h11.InformationalResponse):
            replies.append(Reply(event.status_code))
        elif isinstance(event, h11.Response):
            headers = {name.decode().lower(): value.decode() for name, value in event.headers}
            current = Reply(event.status_code, headers)
        elif isinstance(event, h11.Data) and current is not None:
            current.body += event.data
        elif isinstance(event, h11.EndOfMessage) and current is not None:
            replies.append(current)
            current = None
            if conn.our_state is h11.DONE and conn.their_state is h11.DONE:
                conn.start_next_cycle()
            else:
                return replies


def request(
    method: str, target: str, headers: list[tuple[str, str]] | None = None, body: bytes = b""
) -> bytes:
    """The bytes of one HTTP/1.1 request with a Content-Length body."""
    lines = [f"{method} {target} HTTP/1.1", "Host: test"]
    lines += [f"{name}: {value}" for name, value in headers or []]
    if body:
        lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


def chunked_request(target: str, chunks: list[bytes], headers: list[tuple[str, str]] | None = None) -> bytes:
    """The bytes of a POST whose body is sent with the chunked coding."""
    lines = [f"POST {target} HTTP/1.1", "Host: test", "Transfer-Encoding: chunked"]
    lines += [f"{name}: {value}" for name, value in headers or []]
    head = ("\r\n".join(lines) + "\r\n\r\n").encode()
    body = b"".join(b"%x\r\n%s\r\n" % (len(chunk), chunk) for chunk in chunks if chunk)
    return head + body + b"0\r\n\r\n"
