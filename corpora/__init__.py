"""Text dialogue corpora, read from their published files into :class:`Dialogue`."""

from jmoshi_augment.corpora.dialogue import Dialogue, Turn
from jmoshi_augment.corpora.registry import (
    CorpusInfo,
    SkipCounts,
    get_corpus,
    list_corpora,
    load_corpus,
    register_corpus,
)

__all__ = [
    "CorpusInfo",
    "Dialogue",
    "SkipCounts",
    "Turn",
    "get_corpus",
    "list_corpora",
    "load_corpus",
    "register_corpus",
]
