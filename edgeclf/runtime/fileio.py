"""Small file helpers shared by every stage: atomic writes and content hashes.

Writes that matter go to a temporary file in the destination folder and are renamed into place
only when complete, so an interrupted run never leaves a file that looks valid.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path


def sha256_file(path: str | Path, chunk_size: int = 1 << 20) -> str:
    """Return the hex SHA-256 of a file, read in chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(chunk_size), b""):
            digest.update(block)
    return digest.hexdigest()


@contextlib.contextmanager
def atomic_path(final: str | Path, *, keep_suffix: bool = False) -> Iterator[Path]:
    """Yield a temporary path beside ``final``; rename it onto ``final`` if the block succeeds.

    On any exception the temporary file is removed and ``final`` is left untouched.
    The temporary name starts with ``.`` and ends with ``.partial`` so it never matches a glob
    for finished artifacts. With ``keep_suffix`` it ends with ``.partial`` plus ``final``'s own
    suffixes (``.partial.keras``, ``.partial.weights.h5``, ``.partial.png``), for writers that
    insist on a suffix or pick the file format from it (Keras, matplotlib).
    """
    final = Path(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    suffix = ".partial" + ("".join(final.suffixes) if keep_suffix else "")
    fd, tmp_name = tempfile.mkstemp(prefix=f".{final.name}.", suffix=suffix, dir=final.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    # mkstemp creates 0600; give the finished file the mode a plain open() would (0666 & ~umask).
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)
    try:
        yield tmp
        os.replace(tmp, final)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        raise


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically."""
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def atomic_write_text(path: str | Path, text: str) -> None:
    """Write ``text`` (UTF-8) to ``path`` atomically."""
    atomic_write_bytes(path, text.encode("utf-8"))
