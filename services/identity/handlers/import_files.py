"""What an import job reads of a file before its rows (issue 14): its digest (the job's name), its encoding and
an upper bound of its lines."""

from __future__ import annotations

import codecs
import hashlib
from pathlib import Path


def file_digest(path: str | Path) -> str:
    """The SHA-256 of a file's bytes."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def file_encoding(path: str | Path) -> str:
    """How a file's text is encoded: UTF-8 (with or without BOM) when all of it decodes so, else GB18030 (what
    Excel and most tills in China save a CSV as; a superset of GBK) when that decodes it, else UTF-8 (the job
    then fails saying the file is not UTF-8 text)."""
    for encoding in ("utf-8-sig", "gb18030"):
        decoder = codecs.getincrementaldecoder(encoding)()
        try:
            with open(path, "rb") as fh:
                for block in iter(lambda f=fh: f.read(1 << 20), b""):
                    decoder.decode(block)
            decoder.decode(b"", final=True)
            return encoding
        except UnicodeDecodeError:
            continue
    return "utf-8-sig"


def line_count(path: str | Path) -> int:
    """At least as many lines as a file has, counting every CR and LF (old Excel for Mac ends lines with CR
    alone; neither byte is part of a UTF-8 or GB18030 character): no row's line number exceeds it."""
    count = 1  # a last line without a line break
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            count += block.count(b"\n") + block.count(b"\r")
    return count
