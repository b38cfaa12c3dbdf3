"""The Twisted plugin naming weft's reactor is installed by ``pip install .`` and
by ``pip install -e .`` (build_backend/weft_build.py), where Twisted finds it.

The two build tests run pip as a user would (an isolated build through the
backend), a few seconds each; tests/drivers/test_twisted_on_weft_programs.py
checks the plugin of the installation the tests run from.
"""

from __future__ import annotations

import base64
import hashlib
import importlib.util
import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path
from typing import Any

import pytest

from tests.support import TIMEOUT

pytest.importorskip("twisted.plugin", reason="needs the twisted extra")

import twisted

ROOT = Path(__file__).resolve().parent.parent


def load_backend() -> Any:
    """build_backend/weft_build.py, loaded from its file (it is not a package of weft)."""
    spec = importlib.util.spec_from_file_location("weft_build", ROOT / "build_backend" / "weft_build.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


PLUGIN = ROOT / "plugins" / "twisted" / "plugins" / "weft_reactor.py"
#: The directory holding the ``twisted`` package this environment runs.
TWISTED_HOME = str(Path(twisted.__file__).resolve().parent.parent)

#: Lists the reactors Twisted's plugins offer, and where weft's plugin was read from.
FIND_PLUGIN = """
import json
from twisted.application.reactors import getReactorTypes
names = sorted(r.shortName for r in getReactorTypes())
import twisted.plugins.weft_reactor as plugin
print(json.dumps({"names": names, "plugin": plugin.__file__}))
"""


def record_line(path: str, data: bytes) -> str:
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
    return f"{path},sha256={digest},{len(data)}"


def find_plugin(tmp_path: Path, *, path: list[str], site_dir: Path | None = None) -> dict[str, object]:
    """Run FIND_PLUGIN with no site-packages of ours (``-S``: no ``.pth`` is read)
    but ``path`` and Twisted; with ``site_dir``, that directory is processed as
    a site directory (its ``.pth`` files read)."""
    prelude = f"import site; site.addsitedir({str(site_dir)!r})\n" if site_dir else ""
    done = subprocess.run(
        [sys.executable, "-S", "-c", prelude + FIND_PLUGIN],
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": os.pathsep.join([*path, TWISTED_HOME])},
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    found: dict[str, object] = json.loads(done.stdout.strip().splitlines()[-1])
    return found


def pip(*args: str) -> None:
    """Run this environment's pip (quietly); fail the test if it fails."""
    done = subprocess.run(
        [sys.executable, "-m", "pip", "--disable-pip-version-check", "-q", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=10 * TIMEOUT,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_add_to_wheel_adds_files_and_records_them(tmp_path: Path) -> None:
    """The added files are in the wheel, listed in RECORD with their sha256 and
    size; what was there is kept, RECORD's own line included."""
    wheel = tmp_path / "demo-1.0-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as archive:
        archive.writestr("demo/__init__.py", b"x = 1\n")
        archive.writestr(
            "demo-1.0.dist-info/RECORD", "demo/__init__.py,sha256=abc,6\ndemo-1.0.dist-info/RECORD,,\n"
        )
    added = {"twisted/plugins/demo.py": b"plugin = 1\n", "demo.pth": b"/somewhere\n"}
    load_backend().add_to_wheel(wheel, added)
    with zipfile.ZipFile(wheel) as archive:
        assert archive.read("twisted/plugins/demo.py") == b"plugin = 1\n"
        assert archive.read("demo/__init__.py") == b"x = 1\n"
        record = archive.read("demo-1.0.dist-info/RECORD").decode().splitlines()
        assert archive.namelist()[-1] == "demo-1.0.dist-info/RECORD"
    assert record == [
        "demo/__init__.py,sha256=abc,6",
        "demo-1.0.dist-info/RECORD,,",
        record_line("twisted/plugins/demo.py", b"plugin = 1\n"),
        record_line("demo.pth", b"/somewhere\n"),
    ]


def test_a_wheel_carries_the_plugin_beside_twisteds(tmp_path: Path) -> None:
    """``pip install .``'s wheel holds ``twisted/plugins/weft_reactor.py`` (in its
    RECORD), and Twisted, given the unpacked wheel, offers the weft reactor from it."""
    pip("wheel", "--no-deps", "-w", str(tmp_path / "dist"), ".")
    (wheel,) = (tmp_path / "dist").glob("weft-*.whl")
    site = tmp_path / "site"
    with zipfile.ZipFile(wheel) as archive:
        record = archive.read(next(n for n in archive.namelist() if n.endswith(".dist-info/RECORD")))
        archive.extractall(site)
    assert record_line("twisted/plugins/weft_reactor.py", PLUGIN.read_bytes()) in record.decode().splitlines()
    assert not (site / "twisted" / "__init__.py").exists()
    assert not (site / "twisted" / "plugins" / "__init__.py").exists()
    found = find_plugin(tmp_path, path=[str(site)])
    assert "weft" in found["names"]  # type: ignore[operator]
    assert found["plugin"] == str(site / "twisted" / "plugins" / "weft_reactor.py")


def test_an_editable_install_reads_the_plugin_from_the_checkout(tmp_path: Path) -> None:
    """``pip install -e .`` writes a ``.pth`` naming the checkout's ``plugins``
    directory (which holds only the plugin), and Twisted offers the weft reactor
    from the checkout.  (Installed into a new empty environment: pip would
    replace this environment's own weft if told to install elsewhere with
    ``--prefix``.)"""
    environment = tmp_path / "venv"
    subprocess.run(
        [sys.executable, "-m", "venv", "--without-pip", str(environment)], check=True, timeout=TIMEOUT
    )
    pip("--python", str(environment / "bin" / "python"), "install", "--no-deps", "-e", ".")
    (pth,) = environment.rglob("weft_twisted_plugins.pth")
    assert pth.read_text() == f"{ROOT / 'plugins'}\n"
    assert sorted(p.name for p in (ROOT / "plugins").iterdir()) == ["twisted"]
    found = find_plugin(tmp_path, path=[], site_dir=pth.parent)
    assert "weft" in found["names"]  # type: ignore[operator]
    assert found["plugin"] == str(PLUGIN)
