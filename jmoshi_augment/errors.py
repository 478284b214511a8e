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

    def __reduce__(self):  # keep path/line/key when a worker process sends the error back
        return (_rebuild, (type(self), self.message, self.path, self.line, self.key))


def _rebuild(cls: type, message: str, path: str | None, line: int | None, key: str | None) -> "JmoshiError":
    return cls(message, path=path, line=line, key=key)


class JmoshiErrors(JmoshiError):
    """Several problems found at once (a recipe check): the CLI prints one line per problem, so a
    user fixes everything in one round instead of one problem per run."""

    def __init__(self, errors: list[JmoshiError]) -> None:
        super().__init__("; ".join(str(e) for e in errors))
        self.errors = list(errors)

    def __str__(self) -> str:
        return self.message

    def lines(self) -> list[str]:
        return [str(e) for e in self.errors]

    def __reduce__(self):
        return (JmoshiErrors, (self.errors,))


def first_line(e: BaseException) -> str:
    """A library exception's message cut to one line for a :class:`JmoshiError` (hub and loader
    messages span many lines)."""
    lines = str(e).strip().splitlines()
    return lines[0][:200] if lines else type(e).__name__
