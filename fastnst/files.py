"""File writing shared by every layer (models, images, reports, manifests, caches).

Kept apart from the model code so that modules which only write files (frame extraction,
reports, runtime exports) do not import the network.
"""

from __future__ import annotations

import errno
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from fastnst.errors import UserError, sigterm_deferred


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


@contextmanager
def temp_beside(path: Path, suffix: str = ".tmp") -> Iterator[Path]:
    """A new empty file in ``path``'s folder (renaming it over ``path`` is then atomic),
    removed at the end unless it was renamed. It is made with SIGTERM held back, so no
    signal can land between its creation and the cleanup that knows its name."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp: Path | None = None
    try:
        with sigterm_deferred():
            fd, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=suffix, dir=path.parent)
            os.close(fd)
            tmp = Path(name)
        yield tmp
    finally:
        if tmp is not None:
            tmp.unlink(missing_ok=True)


def disk_full(folder: Path) -> bool:
    """Whether ``folder``'s filesystem has (almost) no space left (under 1 MiB)."""
    try:
        return shutil.disk_usage(folder).free < 2**20
    except OSError:
        return False


def atomic_write(path: Path, write: Callable[[Path], object]) -> None:
    """Call ``write(tmp_path)`` then rename over ``path``: readers never see half a file.
    A write-protected ``path`` is refused (renaming would silently replace it)."""
    check_replaceable(path)
    with temp_beside(path) as tmp:
        try:
            write(tmp)
        except Exception as exc:
            if not isinstance(exc, OSError) and disk_full(path.parent):
                # torch.save and safetensors report a full disk as RuntimeError or their own
                # error: make it the OSError that every command reports in one line.
                raise OSError(errno.ENOSPC, f"no space left on the disk of {path.parent}") from exc
            raise
        os.chmod(tmp, FILE_MODE)  # mkstemp makes 0600; give the file normal permissions
        os.replace(tmp, path)
