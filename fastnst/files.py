"""File writing shared by every layer (models, images, reports, manifests, caches).

Kept apart from the model code so that modules which only write files (frame extraction,
reports, runtime exports) do not import the network.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from pathlib import Path

from fastnst.errors import UserError


def _read_umask() -> int:
    current = os.umask(0)
    os.umask(current)
    return current


# Read once at import: os.umask can only be read by setting it, which races with threads.
FILE_MODE = 0o666 & ~_read_umask()


class ReadOnlyOutputError(UserError):
    """The output exists and is write-protected: someone meant to keep it."""


def check_replaceable(path: Path) -> None:
    """An existing output is replaced, unless it is write-protected (then never). Judged by
    its mode bits, not ``os.access``: root may write anything, but a 0444 file says "keep"."""
    if path.exists() and (not os.access(path, os.W_OK) or path.stat().st_mode & 0o222 == 0):
        raise ReadOnlyOutputError(f"{path} is write-protected; not replacing it")


def atomic_write(path: Path, write: Callable[[Path], object]) -> None:
    """Call ``write(tmp_path)`` then rename over ``path``: readers never see half a file.
    A write-protected ``path`` is refused (renaming would silently replace it)."""
    check_replaceable(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        write(Path(tmp))
        os.chmod(tmp, FILE_MODE)  # mkstemp makes 0600; give the file normal permissions
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
