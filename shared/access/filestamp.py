"""The cheap check that tells a watched file changed: inode, size and modification time, from one stat."""

from __future__ import annotations

from pathlib import Path


def stamp(path: Path) -> tuple[int, int, int] | None:
    """The file's (inode, mtime in ns, size), or None when it is not there; an edit or a replace changes it."""
    try:
        st = path.stat()
    except OSError:
        return None
    return st.st_ino, st.st_mtime_ns, st.st_size
