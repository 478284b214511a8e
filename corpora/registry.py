"""Name → loader registry for text dialogue corpora.

A loader is a function ``(path, skips) -> Iterator[Dialogue]``: it reads the corpus files exactly
as published, yields dialogues lazily, raises :class:`JmoshiError` (with file and row) for input it
cannot read at all, and counts every row or dialogue it skips in ``skips`` so nothing is dropped
silently.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from itertools import islice
from pathlib import Path
from typing import Callable, Iterator

from jmoshi_augment.corpora.dialogue import Dialogue
from jmoshi_augment.errors import JmoshiError


@dataclass
class SkipCounts:
    """What a loader skipped, by reason (e.g. ``"empty text"``), with one example location each."""

    skipped: Counter = field(default_factory=Counter)
    examples: dict[str, str] = field(default_factory=dict)

    def skip(self, reason: str, where: str) -> None:
        self.skipped[reason] += 1
        self.examples.setdefault(reason, where)

    @property
    def num_skipped(self) -> int:
        return sum(self.skipped.values())

    def lines(self) -> list[str]:
        return [f"skipped {n} × {reason} (e.g. {self.examples[reason]})" for reason, n in self.skipped.most_common()]


Loader = Callable[[Path, SkipCounts], Iterator[Dialogue]]


@dataclass(frozen=True)
class CorpusInfo:
    name: str
    description: str
    expected_input: str  # what to pass as PATH, in the corpus's own published layout
    loader: Loader


_REGISTRY: dict[str, CorpusInfo] = {}


def register_corpus(name: str, description: str, expected_input: str) -> Callable[[Loader], Loader]:
    def wrap(loader: Loader) -> Loader:
        if name in _REGISTRY:
            raise ValueError(f"corpus {name!r} registered twice")
        _REGISTRY[name] = CorpusInfo(name, description, expected_input, loader)
        return loader

    return wrap


def _ensure_loaded() -> None:
    # Explicit imports (no star-import side effects): each module registers its loader.
    from jmoshi_augment.corpora import daily_dialogue, jsonl, nttcs, real_persona_chat  # noqa: F401


def list_corpora() -> list[CorpusInfo]:
    _ensure_loaded()
    return list(_REGISTRY.values())


def get_corpus(name: str) -> CorpusInfo:
    _ensure_loaded()
    try:
        return _REGISTRY[name]
    except KeyError:
        known = ", ".join(sorted(_REGISTRY))
        raise JmoshiError(f"unknown corpus {name!r}; known corpora: {known}", key="corpus.name") from None


def load_corpus(
    name: str, path: str | Path, *, limit: int | None = None, skips: SkipCounts | None = None
) -> Iterator[Dialogue]:
    """Lazily yield up to ``limit`` dialogues of corpus ``name`` read from ``path``."""
    info = get_corpus(name)
    path = resolve_corpus_path(path)
    if not path.exists():
        raise JmoshiError(f"does not exist (expected {info.expected_input})", path=path)
    skips = skips if skips is not None else SkipCounts()
    dialogues = unique_ids(info.loader(path, skips), skips)
    return islice(dialogues, limit) if limit is not None else dialogues


def unique_ids(dialogues: Iterator[Dialogue], skips: SkipCounts) -> Iterator[Dialogue]:
    """Every corpus, not only those whose loaders think of it: a repeated id would make two units
    write the same output files, so the later dialogue is skipped and counted."""
    seen: set[str] = set()
    for n, dialogue in enumerate(dialogues, start=1):
        if dialogue.id in seen:
            skips.skip("duplicate dialogue id", f"dialogue {n} read ({dialogue.id})")
            continue
        seen.add(dialogue.id)
        yield dialogue


BUILTIN_PREFIX = "builtin:"


def resolve_corpus_path(path: str | Path) -> Path:
    """``builtin:sample`` names a corpus file shipped inside the package (the README's sample)."""
    text = str(path)
    if text.startswith(BUILTIN_PREFIX):
        name = text[len(BUILTIN_PREFIX):]
        from importlib.resources import files

        bundled = Path(str(files("jmoshi_augment") / "data" / f"{name}.jsonl"))
        if not bundled.exists():
            raise JmoshiError(f"no bundled corpus named {name!r}", path=text)
        return bundled
    return Path(path)
