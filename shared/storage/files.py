"""Files under the data dir are the owner's alone: directories 0700, files 0600, from the moment they exist."""

from __future__ import annotations

import os
from pathlib import Path

DIR_MODE = 0o700
FILE_MODE = 0o600


def private_dir(path: Path | str, *, narrow: bool = False) -> Path:
    """Create a directory (and missing parents) 0700. An existing one is left as it is unless ``narrow``
    (the data dir itself): a store file may sit in a directory others share, such as /tmp."""
    path = Path(path)
    if not path.is_dir():
        path.mkdir(mode=DIR_MODE, parents=True, exist_ok=True)
        path.chmod(DIR_MODE)
    elif narrow and path.stat().st_mode & 0o077:
        path.chmod(DIR_MODE)
    return path


def private_file(path: Path | str) -> Path:
    """Make sure a file exists with mode 0600 before anything writes to it (created so, never widened)."""
    path = Path(path)
    private_dir(path.parent)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, FILE_MODE)
    os.close(fd)
    if path.stat().st_mode & 0o077:
        path.chmod(FILE_MODE)
    return path


def private_umask() -> None:
    """Every file this process and its children create is private (``crm up`` and ``crm service``)."""
    os.umask(0o077)


def private_opener(path: str, flags: int) -> int:
    """An ``opener`` for ``open()`` that creates the file 0600 (logs, span files)."""
    return os.open(path, flags, FILE_MODE)
