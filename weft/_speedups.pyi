"""Types of weft's optional C accelerator (weft/_speedups.c).

Import it through :mod:`weft.drivers._core.descriptor_calls`, which falls
back to ``os.read``/``os.write`` when it is not built or
``WEFT_PURE_PYTHON=1`` is set.
"""

from typing import Final, final

from typing_extensions import Buffer

#: The size of the buffer reads go into (the reactor's read size).
SPARE_SIZE: Final[int]
#: Reads of at most this many bytes are copied out of that buffer; larger ones take it.
COPY_LIMIT: Final[int]

@final
class DescriptorReader:
    """``reader(size)`` is ``os.read(fd, size)``, made with the GIL held (``fd`` must be non-blocking)."""

    @property
    def fd(self) -> int:
        """The descriptor this reads."""

    def __init__(self, fd: int) -> None: ...
    def __call__(self, size: int, /) -> bytes: ...

@final
class DescriptorWriter:
    """``writer(data)`` is ``os.write(fd, data)``, made with the GIL held (``fd`` must be non-blocking)."""

    @property
    def fd(self) -> int:
        """The descriptor this writes."""

    def __init__(self, fd: int) -> None: ...
    def __call__(self, data: Buffer, /) -> int: ...
