"""The output formats, in one table: what each writes per rendering (audio + alignments, as each
trainer reads them), what it writes per unit from the unit's tokens (shards), and what it finishes
once the whole run is on disk. Whether a format needs Mimi and the text tokenizer follows from
having a per-unit writer. The recipe (``output.formats``), the checks before a run and the run
itself all read this table: adding a format is one :class:`OutputFormat` entry here.

This module imports no writer until one runs, so the recipe can read the table cheaply.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Iterable

if TYPE_CHECKING:
    from jmoshi_augment.augment.run.layout import RenderingEntry
    from jmoshi_augment.augment.types import RenderedDialogue, TokenizedDialogue


@dataclass(frozen=True)
class OutputFormat:
    """One output format: its writers and its last step."""

    name: str
    per_rendering: Callable[[Path, "RenderedDialogue"], None] | None = None
    per_unit: Callable[[Path, int, "list[TokenizedDialogue]"], None] | None = None  # from the unit's tokens
    finalize: Callable[[Path, "list[RenderingEntry]"], None] | None = None  # once, from every unit record

    @property
    def needs_tokens(self) -> bool:
        return self.per_unit is not None


def _wav(out_dir: Path, r: RenderedDialogue) -> None:
    from jmoshi_augment.augment.formats.wav_format import write_wav_dialogue

    write_wav_dialogue(out_dir, r)


def _wav_manifest(out_dir: Path, renderings: list[RenderingEntry]) -> None:
    from jmoshi_augment.augment.formats.wav_format import manifest_entry, write_manifest

    write_manifest(out_dir, (manifest_entry(e.id, e.duration) for e in renderings))


def _tar(out_dir: Path, k: int, tokens: list[TokenizedDialogue]) -> None:
    from jmoshi_augment.augment.formats.shards import write_tar_shard

    write_tar_shard(out_dir / "shards" / f"shard-{k:05d}.tar", tokens)


def _jmoshi_dialogue(out_dir: Path, r: RenderedDialogue) -> None:
    from jmoshi_augment.augment.acoustics.outputs import jmoshi_root
    from jmoshi_augment.augment.formats.jmoshi_format import write_jmoshi_dialogue

    write_jmoshi_dialogue(out_dir / jmoshi_root(r.meta), r)


def _jmoshi_parquet(out_dir: Path, k: int, tokens: list[TokenizedDialogue]) -> None:
    from jmoshi_augment.augment.acoustics.outputs import jmoshi_root
    from jmoshi_augment.augment.formats.jmoshi_format import write_jmoshi_parquet

    # acoustic views train with --moshi_speakers A only: their own folder (docs/acoustics.md)
    for root in sorted({jmoshi_root(t.meta) for t in tokens}):
        write_jmoshi_parquet(out_dir / root / "parquet" / f"unit-{k:05d}.parquet", [t for t in tokens if jmoshi_root(t.meta) == root])


def _jmoshi_names(out_dir: Path, renderings: list[RenderingEntry]) -> None:
    from jmoshi_augment.augment.acoustics.outputs import JMOSHI_VIEWS_DIR
    from jmoshi_augment.augment.formats.jmoshi_format import finalize_parquet_names

    for root in ("jmoshi", JMOSHI_VIEWS_DIR):
        finalize_parquet_names(out_dir / root / "parquet")


FORMATS: dict[str, OutputFormat] = {f.name: f for f in (
    OutputFormat("wav", per_rendering=_wav, finalize=_wav_manifest),  # moshi-finetune: wav + json + data.jsonl
    OutputFormat("tar", per_unit=_tar),  # token shards (webdataset layout)
    OutputFormat("jmoshi", per_rendering=_jmoshi_dialogue, per_unit=_jmoshi_parquet, finalize=_jmoshi_names),  # nu-dialogue
)}
FORMAT_NAMES = tuple(FORMATS)  # what ``output.formats`` accepts (recipe_sections.OutputFormat)
TOKEN_FORMATS = frozenset(name for name, f in FORMATS.items() if f.needs_tokens)


def formats_of(names: Iterable[str]) -> list[OutputFormat]:
    """The table's entries for ``names`` (a recipe's ``output.formats``), in name order."""
    return [FORMATS[n] for n in sorted(set(names))]


def token_formats(names: Iterable[str]) -> list[str]:
    """The formats among ``names`` that need Mimi and the text tokenizer."""
    return sorted(set(names) & TOKEN_FORMATS)


def write_rendering(out_dir: Path, r: RenderedDialogue, names: Iterable[str]) -> None:
    for f in formats_of(names):
        if f.per_rendering is not None:
            f.per_rendering(out_dir, r)


def write_unit(out_dir: Path, k: int, tokens: list[TokenizedDialogue], names: Iterable[str]) -> None:
    for f in formats_of(names):
        if f.per_unit is not None:
            f.per_unit(out_dir, k, tokens)


def finalize(out_dir: Path, renderings: list[RenderingEntry], names: Iterable[str]) -> None:
    for f in formats_of(names):
        if f.finalize is not None:
            f.finalize(out_dir, renderings)
