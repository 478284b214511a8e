"""One run per output folder: ``synth`` holds an exclusive lock on ``.synth.lock`` in the folder for
as long as it runs. A second ``synth`` on the same folder is refused with one line naming the
holder (pid and host). The lock is the kernel's (``flock``): a run that was killed holds nothing,
so its leftover file is simply taken over, and the file is removed when the run ends.
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import time
from pathlib import Path
from typing import Iterator

from jmoshi_augment.errors import JmoshiError

logger = logging.getLogger(__name__)

LOCK_NAME = ".synth.lock"


class FolderInUse(JmoshiError):
    """Another ``synth`` runs on this output folder."""


def _holder(fd: int) -> str:
    os.lseek(fd, 0, os.SEEK_SET)
    return os.read(fd, 512).decode("utf-8", "replace").strip()


@contextlib.contextmanager
def run_lock(out_dir: Path) -> Iterator[None]:
    """Hold ``out_dir``'s run lock (creating the folder); :class:`FolderInUse` when another run
    holds it. A folder created here and still empty at the end (the run failed before writing
    anything) is removed again, so the corrected command finds no trace."""
    import fcntl

    out_dir = Path(out_dir)
    created = not out_dir.exists()
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / LOCK_NAME
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _holder(fd) or "another process"
            os.close(fd)
            raise FolderInUse(f"in use by another synth ({holder}); wait for it to finish or choose another "
                              "output folder", path=out_dir) from None
        # The holder before us may have removed the file between our open and our lock: then we
        # hold a lock on a file nobody else will open; start again on the current file.
        try:
            same = os.fstat(fd).st_ino == os.stat(path).st_ino
        except FileNotFoundError:
            same = False
        if same:
            break
        os.close(fd)
    stale = _holder(fd)
    if stale:
        logger.info("%s: taking over the lock left by a run that ended without releasing it (%s)", out_dir, stale)
    os.ftruncate(fd, 0)
    os.lseek(fd, 0, os.SEEK_SET)
    os.write(fd, f"pid {os.getpid()} on {socket.gethostname()}, since {time.strftime('%Y-%m-%d %H:%M:%S')}\n".encode())
    try:
        yield
    finally:
        with contextlib.suppress(OSError):
            path.unlink()
        os.close(fd)  # releases the lock
        if created:
            with contextlib.suppress(OSError):  # not empty (the run wrote something), or gone
                out_dir.rmdir()
