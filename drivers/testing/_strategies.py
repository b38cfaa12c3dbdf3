"""Hypothesis strategies for splitting byte streams into chunks.

A parser that is right for one chunking can be wrong for another; these
strategies let a property test try many.  Needs the ``test`` extra
(hypothesis)::

    @given(chunked(st.binary()))
    def test_any_chunking(chunks: list[bytes]) -> None:
        assert parse_in(chunks) == parse_in([b"".join(chunks)])
"""

from __future__ import annotations

import itertools

from hypothesis import strategies as st

__all__ = ["chunked", "chunkings"]


def chunkings(data: bytes, *, max_chunks: int | None = None) -> st.SearchStrategy[list[bytes]]:
    """Ways of splitting ``data`` into non-empty chunks that join back to it.

    Shrinks towards fewer chunks.  With ``max_chunks`` at most that many.
    """
    if len(data) <= 1:
        return st.just([data] if data else [])
    most_cuts = len(data) - 1 if max_chunks is None else min(len(data) - 1, max_chunks - 1)
    cuts = st.lists(st.integers(min_value=1, max_value=len(data) - 1), unique=True, max_size=most_cuts)
    return cuts.map(lambda points: _split(data, sorted(points)))


def chunked(
    source: st.SearchStrategy[bytes], *, max_chunks: int | None = None
) -> st.SearchStrategy[list[bytes]]:
    """Byte strings drawn from ``source``, each split by :func:`chunkings`."""
    return source.flatmap(lambda data: chunkings(data, max_chunks=max_chunks))


def _split(data: bytes, points: list[int]) -> list[bytes]:
    edges = [0, *points, len(data)]
    return [data[start:end] for start, end in itertools.pairwise(edges)]
