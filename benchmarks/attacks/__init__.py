"""The attack suite: hostile clients against ``weft serve`` on every driver.

``benchmarks/attack.py`` is the script (``python benchmarks/attack.py
--fast``); this package holds what it runs, so that ``tests/cli/test_attack.py``
runs a quick subset of the same cases:

* :mod:`.settings`: every option, limit and reply the suite assumes of weft,
  each in one place, and the two scales (``--fast``, ``--long``);
* :mod:`.results`: a case's figures, each beside its target, and the table;
* :mod:`.server`: ``weft serve`` (or :mod:`.launcher`, for short timeouts)
  as a child process, measured from ``/proc`` and stopped by its PID;
* :mod:`.clients`: raw sockets, an HTTP response reader, TLS over memory BIOs;
* :mod:`.workspace`: the files served, a secret beside them, certificates;
* one module per family of attacks (:mod:`.volume`, :mod:`.crowds`,
  :mod:`.hoarders`, :mod:`.malformed`, :mod:`.slow`, :mod:`.tls_attacks`,
  :mod:`.lifecycle`), and :mod:`.catalogue`, which names them all.

Everything runs on loopback, every wait is bounded, and every process the
suite starts is stopped by its PID.  See ``docs/reliability.md``.
"""
