"""Strategies for fuzzing parsers and protocols: noise, and valid streams mutated.

Random bytes alone rarely reach a parser's interesting states (a netstring
header, a verb followed by a topic), so :func:`noise` mixes them with tokens
that mean something to the parser under test.  :func:`mutated` takes a valid
stream and flips, inserts and deletes bytes, and says where the first change
is: whatever comes before it must still parse exactly as it did.

The budget is the hypothesis profile's (tests/conftest.py):
``HYPOTHESIS_PROFILE=long`` runs every property a hundred times longer.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from hypothesis import strategies as st


def noise(vocabulary: Sequence[bytes], *, max_pieces: int = 24) -> st.SearchStrategy[bytes]:
    """Byte strings made of random bytes and tokens from ``vocabulary``."""
    piece = st.one_of(st.binary(max_size=6), st.sampled_from(list(vocabulary)))
    return st.lists(piece, max_size=max_pieces).map(b"".join)


@dataclass(frozen=True)
class Mutation:
    """A valid stream after some edits.

    ``data[:first_change]`` is exactly the original's first bytes: every
    edit was at or after that offset.
    """

    data: bytes
    first_change: int


@st.composite
def mutated(
    draw: st.DrawFn, original: bytes, vocabulary: Sequence[bytes] = (), *, max_edits: int = 3
) -> Mutation:
    """``original`` with 1 to ``max_edits`` bytes flipped, runs inserted or runs deleted.

    Edits are applied from the back, so each one's offset is an offset into
    the original and the smallest of them is where the result first differs
    (or may: an inserted byte can equal the one it pushes along).
    """
    insertion = st.one_of(st.binary(min_size=1, max_size=6), st.sampled_from([*vocabulary, b"\x00"]))
    edits = draw(
        st.lists(
            st.tuples(
                st.sampled_from(["flip", "insert", "delete"] if original else ["insert"]),
                st.integers(0, len(original)),
            ),
            min_size=1,
            max_size=max_edits,
        )
    )
    data = bytearray(original)
    for kind, offset in sorted(edits, key=lambda edit: edit[1], reverse=True):
        if kind == "insert" or offset >= len(data):
            data[offset:offset] = draw(insertion)
        elif kind == "flip":
            data[offset] ^= draw(st.integers(1, 255))
        else:
            del data[offset : offset + draw(st.integers(1, 6))]
    return Mutation(bytes(data), min(offset for _, offset in edits))
