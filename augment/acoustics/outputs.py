"""Where views go and what a run's report says about them.

Views share every output with the clean renderings except nu-dialogue's jmoshi format: there a
parquet row trains both directions (``--moshi_speakers A B``), and a view's augmented side must
never be the side the model learns to speak, so views get their own tree ``jmoshi-acoustics/``
whose rows put the clean model side in column A (train it with ``--moshi_speakers A``).
"""

from __future__ import annotations

from collections import Counter
from typing import TYPE_CHECKING, Any, Iterable

if TYPE_CHECKING:
    from jmoshi_augment.augment.run.layout import RenderingEntry

JMOSHI_VIEWS_DIR = "jmoshi-acoustics"


def jmoshi_root(meta: dict[str, Any]) -> str:
    """The jmoshi folder of a rendering (``RenderedDialogue.meta``) or its tokens (``TokenizedDialogue.meta``)."""
    return JMOSHI_VIEWS_DIR if ("acoustics" in meta or "acoustics_view_of" in meta) else "jmoshi"


def acoustics_summary(entries: Iterable["RenderingEntry"]) -> dict[str, Any]:
    """How many views, and how many got each effect and kind (the unit records hold every value)."""
    views = [e.acoustics for e in entries if e.acoustics]
    if not views:
        return {}
    effects: Counter = Counter()
    for v in views:
        effects.update(name for name in ("voice", "room", "echo", "noise") if v.get(name))
        if v.get("noise"):
            effects[f"noise:{v['noise']['kind']}"] += 1
        if v.get("voice"):
            effects[f"voice:{v['voice']['target_sex']}"] += 1
        mic = v.get("mic") or {}
        effects.update(name for name, key in (("mic:band", "lowpass_hz"), ("mic:codec", "codec_rate"),
                                              ("mic:clip", "clip_drive_db")) if mic.get(key) is not None)
    return {"views": len(views), "effects": dict(sorted(effects.items()))}
