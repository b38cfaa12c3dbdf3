"""A DNS stub resolver, sans-I/O: A and AAAA queries over any datagram transport.

* :class:`DNSResolverProtocol` resolves names over a datagram endpoint
  connected to one server, with a deadline per attempt (from the
  transport's clock) and retries; the memory network tests it with loss.
* :func:`build_query` and :func:`parse_answer` are the wire format alone
  (RFC 1035), for any other use.

See https://github.com/weft-project/weft/blob/main/docs/datagrams.md.
"""

from weft.protocols.dns._errors import (
    DNSError,
    DNSNameError,
    DNSServerError,
    DNSTimeoutError,
    DNSTruncatedError,
)
from weft.protocols.dns._resolver import DEFAULT_ATTEMPTS, DEFAULT_TIMEOUT, DNSResolverProtocol, Lookup
from weft.protocols.dns._wire import (
    TYPE_A,
    TYPE_AAAA,
    DNSAnswer,
    DNSRecord,
    build_query,
    encode_name,
    parse_answer,
)

__all__ = [
    "DEFAULT_ATTEMPTS",
    "DEFAULT_TIMEOUT",
    "TYPE_A",
    "TYPE_AAAA",
    "DNSAnswer",
    "DNSError",
    "DNSNameError",
    "DNSRecord",
    "DNSResolverProtocol",
    "DNSServerError",
    "DNSTimeoutError",
    "DNSTruncatedError",
    "Lookup",
    "build_query",
    "encode_name",
    "parse_answer",
]
