"""Twisted programs on weft's reactor: a Twisted reactor whose every
iteration is a turn of a :class:`weft.drivers.reactor.Reactor`.

Install it the way Twisted's own alternative reactors are installed, before
anything imports ``twisted.internet.reactor``::

    from weft.drivers import twisted_reactor
    twisted_reactor.install()

    from twisted.internet import reactor   # a WeftReactor

or pick it by name: ``twist --reactor=weft web --listen tcp:8080``,
``trial --reactor=weft mypackage`` (the weft distribution installs the
Twisted plugin that names it).  ``reactor.weft`` is the weft reactor
underneath, on which weft protocols are served beside Twisted code, one
epoll for both.  ``install(reactor=r)`` runs Twisted on a weft reactor ``r``
you already have.  Needs the ``twisted`` extra (``pip install
'weft[twisted]'``).  See https://github.com/weft-project/weft/blob/main/docs/twisted.md.
"""

try:
    import twisted.internet.posixbase  # noqa: F401
except ImportError as exc:  # pragma: no cover - exercised in a subprocess without Twisted
    raise ModuleNotFoundError(
        "weft.drivers.twisted_reactor needs Twisted, which is not installed: pip install 'weft[twisted]'",
        name="twisted",
    ) from exc

from weft.drivers.twisted_reactor._reactor import WeftReactor, install

__all__ = ["WeftReactor", "install"]
