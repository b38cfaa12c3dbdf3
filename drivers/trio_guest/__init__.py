"""Trio programs on weft's reactor: Trio in guest mode, hosted by a
:class:`weft.drivers.reactor.Reactor`.

::

    from weft.drivers.trio_guest import run_trio, start_trio_guest

    run_trio(main)                              # trio.run(main), on a new weft reactor
    run_trio(main, reactor=loop)                # on a reactor that also serves weft protocols
    guest = start_trio_guest(loop, main)        # beside a program that turns the loop itself
    guest.outcome                               # a weft Future: main's result or exception

The Trio program's tasks run on the reactor's thread, between weft's
callbacks; Trio waits for its own I/O in a worker thread of its own and
wakes the reactor through ``call_soon_threadsafe``.  Closing the reactor
cancels a run still going and waits for it to finish, as Trio requires.
A Twisted program on weft's reactor hosts Trio the same way
(``start_trio_guest(reactor.weft, main)``).  Needs the ``trio`` extra
(``pip install 'weft[trio]'``).  See https://github.com/weft-project/weft/blob/main/docs/trio.md.
"""

try:
    import trio  # noqa: F401
except ImportError as exc:  # pragma: no cover - exercised in a subprocess without Trio
    raise ModuleNotFoundError(
        "weft.drivers.trio_guest needs Trio, which is not installed: pip install 'weft[trio]'",
        name="trio",
    ) from exc

from weft.drivers.trio_guest._guest import DEFAULT_CLOSE_TIMEOUT, TrioGuest, start_trio_guest
from weft.drivers.trio_guest._run import run_trio

__all__ = ["DEFAULT_CLOSE_TIMEOUT", "TrioGuest", "run_trio", "start_trio_guest"]
