"""The conditional and range parts of serving a file (RFC 9110 sections 13 and 14).

Pure functions of a request's header values and the file's size and times,
for :class:`~weft._cli.file_server.FileServer`:

* :func:`entity_tag`: a file's ETag, *strong*, from its modification time
  in nanoseconds and its size (``"<mtime_ns hex>-<size hex>"``, nginx's
  recipe with a finer clock).  Strong, so that ``If-Range`` can use it
  (RFC 9110 section 13.1.5 allows only strong validators there).  What it
  promises: a file rewritten with a new size or at a different nanosecond
  gets a new tag.  A rewrite of the same size within one tick of the file
  system's clock keeps the tag, as it keeps Last-Modified; that is the
  price of not reading the file to tag it.
* :func:`not_modified`: whether ``If-None-Match`` (weak comparison), or
  failing that ``If-Modified-Since``, says the client's copy is current
  (a 304).
* :func:`byte_range`: what a ``Range`` header asks of a file of a given
  size: one satisfiable range, nothing at all (unsatisfiable: a 416), or
  the whole file (no header, another unit, a malformed header, or several
  ranges: the server answers those with the whole file, as it may).
* :func:`range_still_valid`: whether ``If-Range`` lets the range apply.

Each costs nothing when its header is absent: one lookup the caller makes.
"""

from __future__ import annotations

import os
from email.utils import parsedate_to_datetime
from typing import Final

__all__ = ["UNSATISFIABLE", "byte_range", "entity_tag", "not_modified", "range_still_valid"]

#: What :func:`byte_range` returns for a range no byte of the file is in.
UNSATISFIABLE: Final = "unsatisfiable"


def entity_tag(info: os.stat_result) -> str:
    """The strong ETag of a file with status ``info``: ``"<mtime_ns>-<size>"`` in hex, quoted."""
    return f'"{info.st_mtime_ns:x}-{info.st_size:x}"'


def _opaque_tags(header: str) -> list[str]:
    """The entity tags listed in an ``If-None-Match``, weakness dropped."""
    tags = []
    for item in header.split(","):
        tag = item.strip()
        if tag.startswith("W/"):
            tag = tag[2:]
        if tag:
            tags.append(tag)
    return tags


def _modified_since(header: str, mtime: int) -> bool:
    """Whether the file changed after the date in ``If-Modified-Since``
    (a malformed date counts as no date: true, as RFC 9110 section 13.1.3 says)."""
    try:
        since = parsedate_to_datetime(header)
    except (TypeError, ValueError):
        return True
    if since.tzinfo is None:
        return True
    return mtime > since.timestamp()


def not_modified(if_none_match: str | None, if_modified_since: str | None, etag: str, mtime: int) -> bool:
    """Whether to answer 304: ``If-None-Match`` lists ``etag`` (or is ``*``),
    compared weakly; without it, ``If-Modified-Since`` is at or after
    ``mtime`` (whole seconds).  RFC 9110 section 13.2.2's order:
    If-Modified-Since is ignored when If-None-Match is there."""
    if if_none_match is not None:
        tags = _opaque_tags(if_none_match)
        return "*" in tags or etag in tags
    if if_modified_since is not None:
        return not _modified_since(if_modified_since, mtime)
    return False


def range_still_valid(if_range: str | None, etag: str, last_modified: str) -> bool:
    """Whether a ``Range`` may apply under ``If-Range``: no If-Range, or it
    names this very file: ``etag`` compared strongly (a weak tag never
    matches), or exactly the ``last_modified`` date sent with it."""
    if if_range is None:
        return True
    value = if_range.strip()
    if value.startswith(('"', "W/")):
        return value == etag
    return value == last_modified


def _position(text: str) -> int | None:
    """A run of ASCII digits as a number (``None`` for anything else: ``int``
    would take spaces, signs, underscores and other scripts' digits)."""
    text = text.strip()
    if not text or not text.isascii() or not text.isdigit():
        return None
    return int(text)


def byte_range(header: str | None, size: int) -> tuple[int, int] | str | None:
    """What ``Range: header`` asks of a file of ``size`` bytes.

    ``(start, count)`` for one satisfiable range (clipped to the file);
    :data:`UNSATISFIABLE` when the one range asked for starts past the end
    (or is a suffix of zero bytes); ``None`` when the whole file is to be
    sent: no header, a unit other than ``bytes``, a malformed header
    (ignored, RFC 9110 section 14.2), several ranges (answered whole, as
    many servers do), or an empty file (nothing to take a range of).
    """
    if header is None or size <= 0:
        return None
    unit, equals, specs = header.partition("=")
    if not equals or unit.strip().lower() != "bytes":
        return None
    ranges = [spec for spec in specs.split(",") if spec.strip()]
    if len(ranges) != 1:
        return None
    first_text, dash, last_text = ranges[0].partition("-")
    if not dash:
        return None
    if not first_text.strip():  # a suffix: the last N bytes
        suffix = _position(last_text)
        if suffix is None:
            return None
        if suffix == 0:
            return UNSATISFIABLE
        start = max(size - suffix, 0)
        return start, size - start
    first = _position(first_text)
    if first is None:
        return None
    if last_text.strip():
        last = _position(last_text)
        if last is None or last < first:
            return None
    else:
        last = size - 1
    if first >= size:
        return UNSATISFIABLE
    return first, min(last, size - 1) - first + 1
