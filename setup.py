"""The one thing pyproject.toml cannot say stably: weft's optional C extension.

``weft._speedups`` (weft/_speedups.c) makes the reactor's per-message read
and write system calls from C.  It is optional: where there is no C compiler
or no Python headers, the build prints one warning and goes on, the wheel
holds the pure-Python package only, and weft runs on its pure-Python path
(docs/performance.md, "The C accelerator").  Everything else about the
package is in pyproject.toml.
"""

from setuptools import Extension, setup

setup(ext_modules=[Extension("weft._speedups", sources=["weft/_speedups.c"], optional=True)])
