"""weft's build backend: setuptools', plus the Twisted plugin that names weft's reactor.

Twisted finds its alternative reactors (``twist --reactor=weft``) through
plugin modules in directories called ``twisted/plugins`` on ``sys.path``;
weft's is ``plugins/twisted/plugins/weft_reactor.py`` in the checkout.  A
package's files cannot put it there on their own, so this backend adds it
to what setuptools builds:

* a wheel (``pip install .``) carries it as ``twisted/plugins/weft_reactor.py``,
  which lands beside Twisted's own plugins;
* an editable wheel (``pip install -e .``) carries ``weft_twisted_plugins.pth``,
  which puts the checkout's ``plugins`` directory (nothing else is in it) on
  ``sys.path``, so Twisted reads the plugin from the checkout.

setuptools alone cannot do the second: its editable finder maps package
names to directories for imports, but Twisted looks for plugin directories
on ``sys.path``, and declaring ``twisted.plugins`` a package would make the
finder claim ``twisted`` as a namespace package even where Twisted is not
installed.  Every other hook is setuptools' own.
"""

from __future__ import annotations

import base64
import hashlib
import zipfile
from pathlib import Path

from setuptools import build_meta as _setuptools
from setuptools.build_meta import *  # noqa: F403 - every hook not redefined here is setuptools'

#: The checkout's directory of Twisted plugins (``twisted/plugins/*.py``, no ``__init__``).
PLUGIN_ROOT = Path(__file__).resolve().parent.parent / "plugins"
#: Where the plugin goes in a wheel (and so in site-packages).
PLUGIN_IN_WHEEL = "twisted/plugins/weft_reactor.py"
#: The path-configuration file of an editable install.
EDITABLE_PTH = "weft_twisted_plugins.pth"


def build_wheel(
    wheel_directory: str,
    config_settings: dict[str, str | list[str]] | None = None,
    metadata_directory: str | None = None,
) -> str:
    """setuptools' wheel, with the Twisted plugin in ``twisted/plugins``."""
    name: str = _setuptools.build_wheel(wheel_directory, config_settings, metadata_directory)
    plugin = (PLUGIN_ROOT / PLUGIN_IN_WHEEL).read_bytes()
    add_to_wheel(Path(wheel_directory, name), {PLUGIN_IN_WHEEL: plugin})
    return name


def build_editable(
    wheel_directory: str,
    config_settings: dict[str, str | list[str]] | None = None,
    metadata_directory: str | None = None,
) -> str:
    """setuptools' editable wheel, with a ``.pth`` naming the checkout's plugin directory."""
    name: str = _setuptools.build_editable(wheel_directory, config_settings, metadata_directory)
    add_to_wheel(Path(wheel_directory, name), {EDITABLE_PTH: f"{PLUGIN_ROOT}\n".encode()})
    return name


def add_to_wheel(wheel: Path, files: dict[str, bytes]) -> None:
    """Rewrite ``wheel`` with ``files`` (path in the wheel to content) added, and
    listed in its RECORD with their hashes, as the wheel format requires."""
    with zipfile.ZipFile(wheel) as old:
        entries = [(info, old.read(info)) for info in old.infolist()]
    records = [info for info, _ in entries if info.filename.endswith(".dist-info/RECORD")]
    if len(records) != 1:
        raise RuntimeError(f"{wheel.name} has {len(records)} RECORD files, not one")
    record_info = records[0]
    lines = next(data for info, data in entries if info is record_info).decode().splitlines()
    rewritten = wheel.with_name(wheel.name + ".tmp")
    with zipfile.ZipFile(rewritten, "w", zipfile.ZIP_DEFLATED) as new:
        for info, data in entries:
            if info is not record_info and info.filename not in files:
                new.writestr(info, data)
        for path, data in files.items():
            info = zipfile.ZipInfo(path, date_time=record_info.date_time)
            info.external_attr = 0o644 << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            new.writestr(info, data)
            digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
            lines = [line for line in lines if not line.startswith(f"{path},")]
            lines.append(f"{path},sha256={digest},{len(data)}")
        new.writestr(record_info, ("\n".join(lines) + "\n").encode())
    rewritten.replace(wheel)
