"""One dialogue, start to finish in memory: script → TTS → plan → mix (or a dialogue-level
backend's whole rendering), one rendering per main-speaker choice.

Every random draw is seeded from (recipe seed, dialogue id), so the result does not depend on
which worker or executor runs it, or in which order.
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

import numpy as np

from jmoshi_augment.augment.run.failures import EnvironmentFailure
from jmoshi_augment.augment.speech.mix import mix
from jmoshi_augment.augment.speech.timing import plan_timeline
from jmoshi_augment.augment.speech.voices import draw_voice_pair, vary_voice, voice_record
from jmoshi_augment.augment.speech.tts import DialogueBackend, RenderFailed, TTSBackend, backend_kind
from jmoshi_augment.augment.text.script import make_script, source_characters
from jmoshi_augment.augment.types import RenderedDialogue, RenderedSegment, SpokenScript
from jmoshi_augment.corpora import Dialogue
from jmoshi_augment.errors import first_line
from jmoshi_augment.recipe import Recipe, VoiceConfig

def dialogue_rng(seed: int, key: str) -> np.random.Generator:
    """Independent of processing order and worker count: seeded by (recipe seed, key)."""
    digest = int.from_bytes(hashlib.sha256(key.encode("utf-8")).digest()[:8], "little")
    return np.random.default_rng([seed, digest])


def main_speakers(speakers: tuple[str, ...], mode: str) -> list[str]:
    return {"first": [speakers[0]], "second": [speakers[1]], "both": list(speakers)}[mode]


@dataclass
class DialogueResult:
    dialogue_id: str
    renderings: list[RenderedDialogue] = field(default_factory=list)
    rejected: str | None = None
    skips: list[str] = field(default_factory=list)
    seconds: dict[str, float] = field(default_factory=dict)
    not_spoken: dict[str, int] = field(default_factory=dict)  # source characters not spoken, by reason
    source_characters: int = 0  # source characters, as augment/text/normalize.py counts them
    # best-of-N trace of a rejected dialogue, per main speaker (a kept rendering carries its own)
    candidates: dict[str, Any] = field(default_factory=dict)
    failed: EnvironmentFailure | None = None  # not made this time (I/O, memory, a model file): its unit is redone


def synthesize_dialogue(dialogue: Dialogue, recipe: Recipe, backend: TTSBackend | DialogueBackend) -> DialogueResult:
    """Everything CPU-bound for one dialogue; returns one rendering per main-speaker choice."""
    result = DialogueResult(dialogue.id)
    t0 = time.perf_counter()
    rng = dialogue_rng(recipe.seed, dialogue.id)
    script = make_script(dialogue, recipe.script, rng)
    result.skips = list(script.skipped)
    result.not_spoken = dict(script.not_spoken)
    result.source_characters = source_characters(script)
    t1 = time.perf_counter()
    result.seconds["script"] = t1 - t0
    if len(script.speakers) != 2:
        result.rejected = f"needs exactly 2 speakers after normalisation, has {len(script.speakers)}"
        return result
    if backend_kind(recipe.tts.backend) == "dialogue":
        return _synthesize_whole(dialogue, script, recipe, backend, result, t1)

    voices = dialogue_voices(recipe, script.speakers, rng, backend)
    rendered = render_segments(script, voices, backend, recipe, dialogue_rng(recipe.seed, f"{dialogue.id}/variation"))
    t2 = time.perf_counter()
    result.seconds["tts"] = t2 - t1
    result.skips += [f"segment not voiced: {r.reason}" for r in rendered if getattr(r, "reason", "")]
    if not any(r.duration > 0 for r, s in zip(rendered, script.segments) if s.kind == "speech"):
        result.rejected = "no speech could be rendered"
        return result

    for main in main_speakers(script.speakers, recipe.output.main_speaker):
        timeline = plan_timeline(script, rendered, recipe.timing, main, dialogue_rng(recipe.seed, f"{dialogue.id}/{main}"))
        other = next(s for s in script.speakers if s != main)
        out = mix(script, rendered, timeline, loudness_dbfs=recipe.tts.loudness_dbfs,
                  gains_db=(voices[main].gain_db, voices[other].gain_db), fade=recipe.timing.edge_fade)
        out.voices = {"main": voices[main].name, "other": voices[other].name}
        out.meta["voice_params"] = {"main": voice_record(voices[main]), "other": voice_record(voices[other])}
        out.meta["dialogue_meta"] = dialogue.meta
        result.renderings.append(out)
    result.seconds["plan_mix"] = time.perf_counter() - t2
    return result


def dialogue_voices(recipe: Recipe, speakers: tuple[str, ...], rng: np.random.Generator, backend: TTSBackend) -> dict[str, VoiceConfig]:
    """The dialogue's two voices: a distinct pair drawn from ``tts.voice_space``, or two of
    ``tts.voices``. Styles are drawn only for a backend that has them."""
    space = recipe.tts.voice_space
    if space is not None:
        pair = draw_voice_pair(space, rng, styles=backend.styles, style_pitch=backend.style_pitch)
        return dict(zip(speakers, pair))
    voice_idx = rng.choice(len(recipe.tts.voices), size=2, replace=False)
    return {spk: recipe.tts.voices[int(i)] for spk, i in zip(speakers, voice_idx)}


def render_segments(script: SpokenScript, voices: dict[str, VoiceConfig], backend: TTSBackend, recipe: Recipe,
                    rng: np.random.Generator) -> list[RenderedSegment]:
    """Each speaker's sentences in one call with the speaker's voice; each backchannel with its own
    small variant of it (``tts.variation``), so no two backchannel instances are the same clip."""
    rendered: list[RenderedSegment | None] = [None] * len(script.segments)
    styles = backend.styles
    for speaker, voice in voices.items():
        idx = [i for i, s in enumerate(script.segments) if s.speaker == speaker and s.kind == "speech"]
        for i, r in zip(idx, backend.render([script.segments[i] for i in idx], voice)):
            rendered[i] = r
    for i, seg in enumerate(script.segments):
        if rendered[i] is None:
            rendered[i] = backend.render([seg], vary_voice(voices[seg.speaker], recipe.tts.variation, rng, styles))[0]
    return rendered  # type: ignore[return-value]


@lru_cache(maxsize=2)
def _scorers(candidates_json: str) -> list[Any]:
    """Best-of-N scorers, built once per process: a CER scorer loads a whole ASR model."""
    from jmoshi_augment.augment.run.candidates import build_scorers
    from jmoshi_augment.recipe import CandidatesConfig

    c = CandidatesConfig.model_validate_json(candidates_json)
    return build_scorers(turn_taking=c.turn_taking, cer=c.cer, asr_model=c.asr_model, device=c.device, target=c.target)


def _synthesize_whole(dialogue: Dialogue, script: SpokenScript, recipe: Recipe, backend: DialogueBackend, result: DialogueResult,
                      t_start: float) -> DialogueResult:
    """A multi-stream model renders the whole dialogue and decides its own timing (J-Moshi's
    method): no planner, no mixer; best of ``candidates.n`` seeds when asked."""
    from jmoshi_augment.augment.run.candidates import best_of_n

    cand = recipe.candidates
    scorers = _scorers(cand.model_dump_json()) if cand.n > 1 else []
    for main in main_speakers(script.speakers, recipe.output.main_speaker):
        rng = dialogue_rng(recipe.seed, f"{dialogue.id}/{main}")
        if cand.n > 1:
            selection = best_of_n(backend, script, main, None, rng, cand.n, scorers)
            out = selection.best
            if out is None:
                result.rejected = selection.failure_summary()
                result.candidates[main] = selection.to_dict()
                return result
        else:
            try:
                out = backend.render_dialogue(script, main, None, rng)
            except RenderFailed as e:
                result.rejected = f"render failed: {e}"
                return result
        out.meta["dialogue_meta"] = dialogue.meta
        result.renderings.append(out)
    result.seconds["tts"] = time.perf_counter() - t_start
    return result


def safe_synthesize(dialogue: Dialogue, recipe: Recipe, backend: TTSBackend | DialogueBackend) -> DialogueResult:
    """:func:`synthesize_dialogue`, never raising for one dialogue (a 600-hour run must not die of
    it): a render the backend refuses is a content failure, recorded as the dialogue's rejection;
    anything else is an environment failure (``failed``), which fails the unit instead of being
    recorded, so a rerun redoes it (augment/run/failures.py). That includes a :class:`JmoshiError`
    raised here: the recipe's files passed their checks before the run, so a voice or model file
    found missing or broken now changed under the run."""
    try:
        return synthesize_dialogue(dialogue, recipe, backend)
    except RenderFailed as e:
        return DialogueResult(dialogue.id, rejected=f"render failed: {first_line(e)}")
    except Exception as e:
        return DialogueResult(dialogue.id, failed=EnvironmentFailure.of(dialogue.id, e))
