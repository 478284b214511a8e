"""N augmented views per rendering: what ``acoustics.views`` adds to a run.

A view is the rendering with its user channel (channel 1, ``OTHER``) augmented and everything else
unchanged: the model channel's samples, the words and so the text streams. Its id is
``RENDERING-acK``; ``meta["acoustics"]`` holds what it drew (``view_of``, ``view`` and
:class:`ViewParams`). Every view is seeded by (recipe seed, rendering id, K), so it does not
depend on the worker, the executor or whether it was made by ``synth`` or by the ``acoustics``
command afterwards.
"""

from __future__ import annotations

from dataclasses import replace
from functools import lru_cache
from typing import Sequence

from jmoshi_augment.augment.acoustics.folders import list_audio
from jmoshi_augment.augment.acoustics.view import Sources, augment_view
from jmoshi_augment.augment.types import MAIN, OTHER, RenderedDialogue
from jmoshi_augment.recipe_acoustics import AcousticsConfig

VIEW_KEY = "acoustics"  # RenderedDialogue.meta key of a view's record


def view_id(rendering_id: str, k: int) -> str:
    return f"{rendering_id}-ac{k}"


def is_view(r: RenderedDialogue) -> bool:
    return VIEW_KEY in r.meta


@lru_cache(maxsize=8)
def _files(folder: str | None) -> tuple[str, ...]:
    return list_audio(folder) if folder else ()


def acoustic_views(renderings: Sequence[RenderedDialogue], cfg: AcousticsConfig, seed: int) -> list[RenderedDialogue]:
    """``cfg.views`` views of each rendering. Babble draws on the other dialogues of the same
    list (a unit), both channels, clean."""
    from jmoshi_augment.augment.run.synthesize import dialogue_rng

    if cfg.views == 0:
        return []
    rir_files, noise_files = _files(cfg.rir_dir), _files(cfg.noise_dir)
    out = []
    for r in renderings:
        pool = tuple((f"{o.id}/{ch}", o.audio[ch]) for o in renderings if o.dialogue_id != r.dialogue_id for ch in (MAIN, OTHER))
        sources = Sources(seed=seed, rir_files=rir_files, noise_files=noise_files, babble=pool)
        for k in range(cfg.views):
            audio, params = augment_view(r.audio, OTHER, cfg, dialogue_rng(seed, f"{r.id}/acoustics/{k}"), sources)
            record = {"view_of": r.id, "view": k, **params.to_dict()}
            out.append(replace(r, id=view_id(r.id, k), audio=audio, meta={**r.meta, VIEW_KEY: record}))
    return out
