"""What you implement to run the suite on your transports: a harness.

The suite needs three things of a transport implementation, and nothing
about how it is built: a way to connect two protocols through a fresh pair
of its transports (:meth:`TransportHarness.connect`), a way to run whatever
moves their bytes until something has happened (:meth:`ConnectedPair.run_until`),
and the exceptions protocol callbacks raised that it reported
(:attr:`ConnectedPair.callback_errors`).  Time, if the loop has any, is the
loop's own: a harness over a fake clock moves it while nothing else can
happen, one over a real loop waits.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Protocol, runtime_checkable

__all__ = ["ConnectedPair", "TransportHarness"]


@runtime_checkable
class ConnectedPair(Protocol):
    """Two protocols joined through the transports under test, and what runs them."""

    def run_until(self, condition: Callable[[], bool], timeout: float) -> bool:
        """Run the loop until ``condition()`` holds, and say whether it does.

        Return ``True`` as soon as it holds (at once if it already does), and
        ``False`` once ``timeout`` seconds of the loop's time have passed
        without it, or once nothing more can happen (a fake clock with no
        timer left).  The condition may call transports (the suite writes
        from it); an exception it raises propagates.
        """
        ...

    @property
    def callback_errors(self) -> Sequence[BaseException]:
        """The exceptions raised by protocol callbacks that the driver reported so far.

        However the driver reports them: logged with the exception attached,
        handed to its loop's exception handler, or raised to the caller of
        ``run_until`` (the harness then records it and goes on).
        """
        ...

    def close(self) -> None:
        """Release what the pair holds (its loop, descriptors, listeners).

        The suite ends both connections first (with ``abort()``) and runs
        the pair until both protocols have had ``connection_lost``.
        """


@runtime_checkable
class TransportHarness(Protocol):
    """Makes connected pairs of your transports; the suite's one requirement.

    Each check calls :meth:`connect` once (or a few times) with protocols of
    its own, so every call must give a fresh connection, and usually a fresh
    loop: nothing one check leaves behind can then reach the next.
    """

    #: What the reports call it ("my-transport over TCP").
    name: str

    def connect(self, client: Any, server: Any) -> ConnectedPair:
        """Connect ``client`` and ``server`` through two new transports of yours.

        Return once connecting has begun, or done; the suite then runs the
        pair until both protocols have had ``connection_made``.  Raise if
        the connection cannot be made.
        """
        ...
