"""The writers of each output format, in two tables: per rendering (audio + alignments, as
each trainer reads them) and per unit (token shards), plus the token stage that feeds the latter.
Adding a format is one entry here and one in the recipe's ``OutputFormat``."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

from jmoshi_augment.augment.run.run_report import describe_file
from jmoshi_augment.augment.types import RenderedDialogue, TokenizedDialogue
from jmoshi_augment.errors import JmoshiError
from jmoshi_augment.recipe import Recipe


def _wav(out_dir: Path, r: RenderedDialogue) -> None:
    from jmoshi_augment.augment.formats.wav_format import write_wav_dialogue

    write_wav_dialogue(out_dir, r)


def _jmoshi_dialogue(out_dir: Path, r: RenderedDialogue) -> None:
    from jmoshi_augment.augment.acoustics.report import jmoshi_root
    from jmoshi_augment.augment.formats.jmoshi_format import write_jmoshi_dialogue

    write_jmoshi_dialogue(out_dir / jmoshi_root(r.meta), r)


def _tar(out_dir: Path, k: int, tokens: list[TokenizedDialogue]) -> None:
    from jmoshi_augment.augment.formats.shards import write_tar_shard

    write_tar_shard(out_dir / "shards" / f"shard-{k:05d}.tar", tokens)


def _jmoshi_parquet(out_dir: Path, k: int, tokens: list[TokenizedDialogue]) -> None:
    from jmoshi_augment.augment.acoustics.report import jmoshi_root
    from jmoshi_augment.augment.formats.jmoshi_format import write_jmoshi_parquet

    # acoustic views train with --moshi_speakers A only: their own folder (docs/acoustics.md)
    for root in sorted({jmoshi_root(t.meta) for t in tokens}):
        write_jmoshi_parquet(out_dir / root / "parquet" / f"unit-{k:05d}.parquet", [t for t in tokens if jmoshi_root(t.meta) == root])


RENDERING_WRITERS: dict[str, Callable[[Path, RenderedDialogue], None]] = {"wav": _wav, "jmoshi": _jmoshi_dialogue}
UNIT_WRITERS: dict[str, Callable[[Path, int, list[TokenizedDialogue]], None]] = {"tar": _tar, "jmoshi": _jmoshi_parquet}
TOKEN_FORMATS = set(UNIT_WRITERS)  # formats that need Mimi and the text tokenizer


def write_rendering(out_dir: Path, r: RenderedDialogue, formats: set[str]) -> None:
    for fmt in sorted(formats & set(RENDERING_WRITERS)):
        RENDERING_WRITERS[fmt](out_dir, r)


class TokenStage:
    """Mimi + SentencePiece and the token writers, created only when a token format is asked for."""

    def __init__(self, recipe: Recipe, *, device: str | None = None) -> None:
        """``device`` overrides ``tokenize.device`` (a Ray driver checks the models on its CPU)."""
        from jmoshi_augment.augment.tokens.tokenize import MimiEncoder
        from jmoshi_augment.checkpoints import load_mimi, load_text_tokenizer, resolve_device

        self.recipe = recipe
        m, t = recipe.models, recipe.tokenize
        device = resolve_device(device or t.device, key="tokenize.device")
        if m.text_tokenizer is None:
            raise JmoshiError("models.text_tokenizer is required for token formats", key="models.text_tokenizer")
        self.sp = load_text_tokenizer(m.text_tokenizer)
        mimi = load_mimi(m.mimi, device=device, num_codebooks=t.n_q, random_weights=m.random_weights)
        self.encoder = MimiEncoder(mimi, n_q=t.n_q, batch_size=t.batch_size, device=device)
        self.files = {
            "mimi": "random weights" if m.random_weights else describe_file(m.mimi, "Mimi weights"),
            "text_tokenizer": describe_file(m.text_tokenizer, "text tokenizer"),
        }

    def write(self, out_dir: Path, k: int, renderings: list[RenderedDialogue]) -> dict[str, Any]:
        from jmoshi_augment.augment.tokens.tokenize import tokenize_dialogues

        tokens = tokenize_dialogues(renderings, self.encoder, self.sp, self.recipe.tokenize)
        for fmt in self.recipe.output.formats:
            if fmt in UNIT_WRITERS:
                UNIT_WRITERS[fmt](out_dir, k, tokens)
        return {t.id: int(t.meta.get("dropped_tokens", 0)) for t in tokens}
