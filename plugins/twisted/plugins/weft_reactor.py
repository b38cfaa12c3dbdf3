"""Twisted's plugin for weft's reactor: ``twist --reactor=weft``, ``trial --reactor=weft``.

Twisted reads every module in the ``twisted/plugins`` directories on
``sys.path`` (this directory has no ``__init__.py`` on purpose) and offers
each ``IReactorInstaller`` it finds under its short name.  Choosing it
imports ``weft.drivers.twisted_reactor`` and calls its ``install()``.
The weft distribution installs this file (see ``build_backend/weft_build.py``).
"""

from twisted.application.reactors import Reactor

weft = Reactor(
    "weft",
    "weft.drivers.twisted_reactor",
    "weft's reactor (epoll), shared with weft protocols on the same loop",
)
