"""Compile the benchmarks' C programs: ``loadgen.c``, ``c_echo.c`` and ``c_uring_echo.c``.

Each is built with ``gcc -O2`` on first use into a cache directory outside
the repository (``$XDG_CACHE_HOME/weft-benchmarks``, or
``~/.cache/weft-benchmarks``), named by a hash of its source and the
compiler, so an edit rebuilds it and no binary is ever committed.  Without a
compiler the benchmarks stop with a clear message: there is no Python
fallback client, because a Python client costs more per message than the
servers it would measure and would hide their differences.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
from pathlib import Path

HERE = Path(__file__).resolve().parent


class BuildError(RuntimeError):
    """A C program could not be compiled."""


def cache_dir() -> Path:
    """Where compiled programs live (never inside the repository)."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "weft-benchmarks"


def build(name: str) -> Path:
    """The path of the compiled ``benchmarks/<name>.c``, compiling it if needed."""
    source = HERE / f"{name}.c"
    compiler = shutil.which(os.environ.get("CC", "gcc"))
    if compiler is None:
        raise BuildError(
            f"the benchmarks need a C compiler to build {source.name}: "
            "install gcc (Debian/Ubuntu: apt-get install gcc) or set CC to one"
        )
    flags = ["-O2", "-Wall"]
    digest = hashlib.sha256(source.read_bytes() + " ".join([compiler, *flags]).encode()).hexdigest()[:16]
    binary = cache_dir() / f"{name}-{digest}"
    if binary.exists():
        return binary
    binary.parent.mkdir(parents=True, exist_ok=True)
    partial = binary.with_name(f"{binary.name}.{os.getpid()}.tmp")
    result = subprocess.run(
        [compiler, *flags, "-o", str(partial), str(source)], capture_output=True, text=True, check=False
    )
    if result.returncode != 0:
        partial.unlink(missing_ok=True)
        raise BuildError(f"compiling {source.name} failed:\n{result.stderr}")
    partial.replace(binary)  # atomic: a concurrent run never sees half a binary
    for stale in binary.parent.glob(f"{name}-*"):  # builds of earlier versions of the source
        if stale != binary and not stale.name.endswith(".tmp"):
            stale.unlink(missing_ok=True)
    return binary


def build_for(chosen: list[str]) -> Path:
    """Build the load generator (and the C floor servers ``chosen`` has);
    return the load generator.  Exits with the build error's message."""
    try:
        binary = build("loadgen")
        if "c-epoll" in chosen:
            build("c_echo")
        if any(kind.startswith("c-uring") for kind in chosen):
            build("c_uring_echo")
    except BuildError as exc:
        raise SystemExit(str(exc)) from None
    return binary
