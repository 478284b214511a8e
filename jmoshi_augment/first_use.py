"""Caches filled on first use, made once per machine under a file lock.

Several workers (processes, or Ray tasks on one node) that start on an empty cache would otherwise
all fill it at once; a model package that reassembles its weights through one fixed temporary
name (the kokoro backend's, for one) then has two workers collide, and one fails. A lock file
beside the cache serialises the first use; later uses take the lock briefly and find the cache
filled.

Caches of our dependencies that lock themselves: the Hugging Face hub cache (``filelock`` per
file), matplotlib's font list (its own lock file). pyopenjtalk-plus and unidic-lite ship their
dictionaries inside their wheels (nothing is filled at run time).
"""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Iterator

LOCK_TIMEOUT = 600.0  # seconds: assembling a model on a slow shared disk takes a while; never forever


@contextlib.contextmanager
def first_use_lock(folder: Path, name: str = "first-use") -> Iterator[None]:
    """Hold ``folder/.NAME.lock`` (creating the folder) while a cache in it is filled or checked."""
    from filelock import FileLock

    folder.mkdir(parents=True, exist_ok=True)
    with FileLock(str(folder / f".{name}.lock"), timeout=LOCK_TIMEOUT):
        yield
