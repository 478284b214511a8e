"""The token stage: Mimi + SentencePiece turn a unit's renderings into tokens, which the token
formats of :mod:`.output_formats` then write as that unit's shards. Loaded once per process, and
only when the recipe asks for a token format."""

from __future__ import annotations

from pathlib import Path

from jmoshi_augment.augment.run.model_files import describe_file
from jmoshi_augment.augment.run.output_formats import token_formats, write_unit
from jmoshi_augment.augment.types import RenderedDialogue
from jmoshi_augment.errors import JmoshiError
from jmoshi_augment.recipe import Recipe


class TokenStage:
    """Mimi + SentencePiece, loaded for a recipe that writes a token format."""

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

    def write(self, out_dir: Path, k: int, renderings: list[RenderedDialogue]) -> dict[str, int]:
        """Tokenize unit ``k``'s renderings and write its shards; returns the text tokens dropped
        per rendering id."""
        from jmoshi_augment.augment.tokens.tokenize import tokenize_dialogues

        tokens = tokenize_dialogues(renderings, self.encoder, self.sp, self.recipe.tokenize)
        write_unit(out_dir, k, tokens, self.recipe.output.formats)
        return {t.id: int(t.meta.get("dropped_tokens", 0)) for t in tokens}


def token_stage_for(recipe: Recipe, *, device: str | None = None) -> TokenStage | None:
    """The token stage when the recipe writes a token format, else None."""
    return TokenStage(recipe, device=device) if token_formats(recipe.output.formats) else None
