"""Voices as a space: a distinct pair drawn per dialogue, and a fresh variant per backchannel.

Pure functions of a seeded generator, so a dialogue gets the same voices whatever the worker
count or processing order. A drawn voice is an ordinary :class:`VoiceConfig` (stock style or a
convex blend of two, speed, pitch); its ``name`` spells the draw out, so unit records, the report
and ``models.json`` say what each dialogue got.
"""

from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np

from jmoshi_augment.recipe import VariationConfig, VoiceConfig, VoiceSpaceConfig

PAIR_TRIES = 64  # redraws of the second pitch before falling back to the far end of the range


def voice_label(style: object, half_tone: float, speed: float) -> str:
    """``jf_alpha·72+jm_kumo·28 +1.3st x1.08``: readable in a report, unique enough to group by."""
    if style is None:
        head = "default"
    elif isinstance(style, str):
        head = style
    else:
        head = "+".join(f"{n}·{round(w * 100)}" for n, w in sorted(style, key=lambda p: -p[1]))
    return f"{head} {half_tone:+.1f}st x{speed:.2f}"


def _style(primary: str, others: Sequence[str], rng: np.random.Generator, prob: float, most: float) -> object:
    if not others or most <= 0 or rng.random() >= prob:
        return primary
    second = str(rng.choice(list(others)))
    w = float(rng.uniform(0.0, most))
    return ((primary, round(1.0 - w, 6)), (second, round(w, 6))) if w > 0 else primary


def _canonical(style: object) -> object:
    """The recipe's normal form (sorted pairs), so a drawn voice equals its own JSON round trip."""
    return VoiceConfig(name="_", style=style).style


def base_pitch(style: object, style_pitch: Mapping[str, float] | None) -> float:
    """A style's own pitch (semitones re 100 Hz): a stock voice's measured median F0, a blend's
    weighted mean of its voices' (an approximation); 0 when the backend has no such figures."""
    if not style_pitch or style is None:
        return 0.0
    pairs = ((style, 1.0),) if isinstance(style, str) else style
    return float(sum(w * style_pitch[n] for n, w in pairs))


def draw_voice_pair(space: VoiceSpaceConfig, rng: np.random.Generator, *, styles: Sequence[str] = (),
                    style_pitch: Mapping[str, float] | None = None) -> tuple[VoiceConfig, VoiceConfig]:
    """Two voices that differ in dominant stock style (a backend's ``styles``, or the space's
    subset of them) and whose resulting pitches (the style's own pitch plus the shift) lie at
    least ``min_half_tone_gap`` semitones apart; speeds drawn independently. A backend without
    styles gets pitch and speed alone."""
    pool = list(space.styles or styles) if styles else []
    drawn: list[object] = [None, None]
    if pool:
        primaries = [str(s) for s in rng.choice(pool, size=2, replace=False)]
        for k, primary in enumerate(primaries):
            others = [s for s in pool if s not in primaries]
            drawn[k] = _canonical(_style(primary, others, rng, space.blend_prob, space.blend_max))
    base = [base_pitch(st, style_pitch if pool else None) for st in drawn]
    lo, hi = space.half_tone
    pitches = [float(rng.uniform(lo, hi))]
    for _ in range(PAIR_TRIES):
        h = float(rng.uniform(lo, hi))
        if abs(base[1] + h - base[0] - pitches[0]) >= space.min_half_tone_gap:
            break
    else:  # take the end of the range that puts the second voice farther from the first
        h = max((lo, hi), key=lambda x: abs(base[1] + x - base[0] - pitches[0]))
    pitches.append(h)
    voices = []
    for style, half_tone in zip(drawn, pitches):
        speed = round(float(rng.uniform(*space.speed)), 4)
        half_tone = round(half_tone, 3)
        voices.append(VoiceConfig(name=voice_label(style, half_tone, speed), style=style, half_tone=half_tone, speed=speed))
    return voices[0], voices[1]


def vary_voice(voice: VoiceConfig, variation: VariationConfig, rng: np.random.Generator,
               styles: Sequence[str] = ()) -> VoiceConfig:
    """A variant of ``voice`` for one backchannel instance: speed and pitch jittered, and (backends
    with styles) a little weight moved toward another stock voice. The name stays the speaker's."""
    speed = voice.speed * (1.0 + float(rng.uniform(-variation.speed, variation.speed)))
    half_tone = voice.half_tone + float(rng.uniform(-variation.half_tone, variation.half_tone))
    style = voice.style
    if styles and variation.style > 0:
        base = dict(((style, 1.0),) if isinstance(style, str) else (style or ((styles[0], 1.0),)))
        other = str(rng.choice([s for s in styles if s not in base] or list(styles)))
        w = float(rng.uniform(0.0, variation.style))
        mixed = {n: x * (1.0 - w) for n, x in base.items()}
        mixed[other] = mixed.get(other, 0.0) + w
        style = _canonical(mixed)
    return voice.model_copy(update={"speed": round(min(max(speed, 0.31), 2.99), 4),
                                    "half_tone": round(half_tone, 3), "style": style})


def voice_record(voice: VoiceConfig) -> dict[str, object]:
    """What a unit record and ``models.json`` keep about a dialogue's voice."""
    style = voice.style
    return {
        "name": voice.name,
        "style": style if isinstance(style, str) or style is None else {n: w for n, w in style},
        "half_tone": voice.half_tone,
        "speed": voice.speed,
        **({"htsvoice": voice.htsvoice} if voice.htsvoice else {}),
    }


__all__ = ["base_pitch", "draw_voice_pair", "vary_voice", "voice_label", "voice_record"]
