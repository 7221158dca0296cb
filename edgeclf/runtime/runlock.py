"""One writer per run folder: an exclusive ``flock`` on ``RUN/.edgeclf.lock``.

``train`` holds it from the moment the run folder exists until ``manifest.json`` is written, and
``export`` while it converts and records artifacts. A second writer of the same folder is refused
at once with one line naming the holder, before it does any work: two exports of one run used to
both exit 0 while the manifest kept only one export's entries.

``flock`` is released by the kernel when the holder exits, ``kill -9`` included, so a stale lock
file never blocks anyone: only a live process holds the lock. (It is advisory: it protects edgeclf
processes from each other, not against other programs editing the folder.)
"""

from __future__ import annotations

import contextlib
import errno
import os
from collections.abc import Iterator
from pathlib import Path

from edgeclf.runtime.errors import EdgeclfError

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows: no flock; run folders are then unguarded
    fcntl = None  # type: ignore[assignment]

LOCK_NAME = ".edgeclf.lock"


class RunBusyError(EdgeclfError):
    """Another process is writing the same run folder."""


@contextlib.contextmanager
def run_lock(run_dir: str | Path, what: str) -> Iterator[Path]:
    """Hold the run folder's write lock for the block; ``what`` says who holds it (``"export"``).

    Raises:
        RunBusyError: another live process holds the lock (the message names it).
        EdgeclfError: the lock file cannot be created (folder missing or read-only).
    """
    run_dir = Path(run_dir)
    lock_file = run_dir / LOCK_NAME
    try:
        fd = os.open(lock_file, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as error:
        raise EdgeclfError(
            f"{run_dir}: cannot write into the run folder ({error.strerror or error}); "
            "fix its permissions or copy the run somewhere writable"
        ) from None
    try:
        if fcntl is not None:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError as error:
                if error.errno not in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                    raise EdgeclfError(f"{lock_file}: cannot lock ({error.strerror or error})") from None
                holder = _read_holder(fd)
                raise RunBusyError(
                    f"{run_dir}: another edgeclf process is writing this run folder ({holder}); "
                    "wait for it to finish, or use another folder"
                ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{what} pid {os.getpid()}\n".encode(), 0)
        yield lock_file
    finally:
        os.close(fd)  # closing releases the flock


def _read_holder(fd: int) -> str:
    try:
        text = os.pread(fd, 200, 0).decode("utf-8", "replace").strip()
    except OSError:
        text = ""
    return text or "unknown process"
