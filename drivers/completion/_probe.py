"""Whether io_uring can be used here: asked once, by making a small ring.

The answer is cached for the process (a ring costs a system call and two
mappings); :func:`unavailable_reason` is what ``weft drivers`` shows and what
``open_runtime("completion")`` raises.  Tests that force a refusal clear the
cache (``unavailable_reason.cache_clear()``).
"""

from __future__ import annotations

import functools

from weft.drivers.completion._uring import Ring, RingUnavailableError

__all__ = ["unavailable_reason"]


@functools.cache
def unavailable_reason() -> str | None:
    """Why the completion driver cannot run here, in one line; None when it can."""
    try:
        Ring(2, 4).close()
    except RingUnavailableError as exc:
        return f"io_uring is unavailable: {exc.strerror or exc}"
    return None
