"""One exception type for every user-facing failure.

The CLI prints ``str(error)`` as a single line and exits with code 2; everything a user needs to
fix the input (file, line or row, key path, what was expected) goes into that line.
"""

from __future__ import annotations

from pathlib import Path


class JmoshiError(Exception):
    """A bad input or a missing resource, described for the person who supplied it."""

    def __init__(
        self,
        message: str,
        *,
        path: str | Path | None = None,
        line: int | None = None,
        key: str | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.path = None if path is None else str(path)
        self.line = line
        self.key = key

    def __str__(self) -> str:
        where = ""
        if self.path is not None:
            where = self.path
            if self.line is not None:
                where += f":{self.line}"
            where += ": "
        if self.key is not None:
            where += f"{self.key}: "
        return where + self.message
