"""Machinery the drivers share: futures, timers, accept loops, socket binding, child processes.

Private: nothing here imports a driver, and every driver may import it.  The
names users need (:class:`~weft.drivers.Future`, :class:`~weft.drivers.FileSlice`,
:class:`~weft.drivers.Process`) are exported by :mod:`weft.drivers`.
"""
