"""The ``transport`` attribute of weft's protocols, which explains itself when read too early.

A protocol gets its transport in ``connection_made``; until then, a call
that writes (``send_line``, ``subscribe``, ``publish``...) would meet a
bare ``AttributeError: ... has no attribute 'transport'``.  A
:class:`TransportSlot` on the class answers that read instead, with a
:class:`~weft.protocols.errors.NotConnectedError` that names the call made
too early and says what to do first.

It costs nothing once connected: it is a non-data descriptor, so the
instance's own ``transport`` (set in ``connection_made``) is found first,
by the same lookup a plain attribute takes.  Only a read before that
reaches :meth:`TransportSlot.__get__`.
"""

from __future__ import annotations

import sys
from typing import Any, overload

from weft.protocols.contract import Transport
from weft.protocols.errors import NotConnectedError

__all__ = ["TransportSlot"]


def _outermost_call(protocol: object) -> str | None:
    """The name of the outermost method of ``protocol`` on the stack: the
    call the user made (``subscribe``), not the helper that read the
    transport (``send_command``).  Read only on the way to an error."""
    frame = sys._getframe(2)  # the frame that read the attribute
    name = None
    while frame is not None and frame.f_locals.get("self") is protocol:
        name = frame.f_code.co_name
        frame = frame.f_back  # type: ignore[assignment]
    return name


class TransportSlot:
    """A class attribute ``transport`` (see the module docstring)."""

    @overload
    def __get__(self, instance: None, owner: type) -> TransportSlot: ...

    @overload
    def __get__(self, instance: object, owner: type) -> Transport: ...

    def __get__(self, instance: object | None, owner: type) -> Any:
        if instance is None:
            return self
        kind = type(instance).__name__
        call = _outermost_call(instance)
        what = f"{kind}.{call}()" if call is not None else f"{kind}.transport"
        raise NotConnectedError(
            f"{what} was used before the protocol was connected: it has no transport yet. "
            f"Connect it first (hand it to a driver, e.g. runtime.connect_tcp(lambda: protocol, ...), "
            f"or weft.drivers.testing.connect(protocol) in a test) and use it from its "
            f"connection_made() on"
        )
