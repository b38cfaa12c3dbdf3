"""Header fields: a case-insensitive view of a message's fields, and the
conversions from what users pass in."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping

__all__ = ["HeaderInput", "Headers", "header_list"]

#: What a user may pass as headers: a mapping, or pairs of ``str`` or ``bytes``.
HeaderInput = Mapping[str, str] | Iterable[tuple[str | bytes, str | bytes]]


def _text(value: str | bytes) -> bytes:
    return value if isinstance(value, bytes) else value.encode("latin-1")


def header_list(headers: HeaderInput) -> list[tuple[bytes, bytes]]:
    """``headers`` as a list of ``(name, value)`` byte pairs, in order.

    Text is encoded as latin-1 (HTTP's historical charset); anything else
    raises ``UnicodeEncodeError``.  Validity (no CR or LF, a legal name) is
    h11's to check when the message is sent.
    """
    pairs: Iterable[tuple[str | bytes, str | bytes]] = (
        headers.items() if isinstance(headers, Mapping) else headers
    )
    return [(_text(name), _text(value)) for name, value in pairs]


class Headers:
    """The header fields of a received message.

    Lookup ignores case: ``headers["content-type"]``, ``headers.get("Host")``,
    ``"cookie" in headers``.  Values are ``str`` (decoded as latin-1).  A name
    that occurs more than once gives its values joined by ``", "`` (HTTP's
    rule; use :meth:`get_all` for ``Set-Cookie``).  :attr:`raw` keeps the
    fields as they came, names in their original case.
    """

    __slots__ = ("_index", "_raw")

    def __init__(self, raw: Iterable[tuple[bytes, bytes]]) -> None:
        self._raw = list(raw)
        index: dict[str, list[str]] = {}
        for name, value in self._raw:
            index.setdefault(name.decode("latin-1").lower(), []).append(value.decode("latin-1"))
        self._index = index

    @classmethod
    def _parsed(cls, raw: list[tuple[bytes, bytes]], index: dict[str, list[str]]) -> Headers:
        """(the quick path) fields already indexed as ``__init__`` would index them."""
        headers = cls.__new__(cls)
        headers._raw = raw
        headers._index = index
        return headers

    @property
    def raw(self) -> list[tuple[bytes, bytes]]:
        """The fields as received: ``(name, value)`` bytes, original case, in order."""
        return list(self._raw)

    def get(self, name: str, default: str | None = None) -> str | None:
        """The value of ``name`` (any case), or ``default`` when absent."""
        values = self._index.get(name.lower())
        return default if values is None else ", ".join(values)

    def get_all(self, name: str) -> list[str]:
        """Every value of ``name`` (any case), in order; empty when absent."""
        return list(self._index.get(name.lower(), ()))

    def items(self) -> list[tuple[str, str]]:
        """``(name, value)`` pairs in order, names lower-cased."""
        return [(name.decode("latin-1").lower(), value.decode("latin-1")) for name, value in self._raw]

    def _lookup(self, lower_name: str) -> list[str] | None:
        """(weft's HTTP protocols) the values of ``lower_name``, already lower
        case, or ``None``; no copy, for the per-request checks."""
        return self._index.get(lower_name)

    def __getitem__(self, name: str) -> str:
        value = self.get(name)
        if value is None:
            raise KeyError(name)
        return value

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and name.lower() in self._index

    def __iter__(self) -> Iterator[str]:
        return iter(self._index)

    def __len__(self) -> int:
        return len(self._raw)

    def __repr__(self) -> str:
        return f"Headers({self.items()!r})"
