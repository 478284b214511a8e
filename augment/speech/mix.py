"""Put planned segments on two channels: a pure function of (segment audio, offset, channel)."""

from __future__ import annotations

import numpy as np

from jmoshi_augment.augment.types import (
    MAIN,
    OTHER,
    SAMPLE_RATE,
    AlignedWord,
    RenderedDialogue,
    RenderedSegment,
    SpokenScript,
    Timeline,
    script_fields,
)
from jmoshi_augment.constants import MIX_PEAK_LIMIT
from jmoshi_augment.recipe import TimingConfig


def speech_rms(audio: np.ndarray, spans: list[tuple[int, int]]) -> float:
    """RMS over the samples where the channel speaks (silence between turns must not count)."""
    if not spans:
        return 0.0
    power = sum(float(np.square(audio[a:b], dtype=np.float64).sum()) for a, b in spans)
    n = sum(b - a for a, b in spans)
    return float(np.sqrt(power / max(n, 1)))


# Digital silence is a run of exact zeros at least this long; shorter ones are a waveform crossing zero.
MIN_SILENCE = 0.005


def sound_stretches(x: np.ndarray, min_silence_samples: int) -> tuple[np.ndarray, np.ndarray]:
    """Start and end sample of each stretch of sound: what lies between runs of at least
    ``min_silence_samples`` exact zeros."""
    zero = np.concatenate([[0], (np.asarray(x) == 0).astype(np.int8), [0]])
    d = np.flatnonzero(np.diff(zero))
    zs, ze = d[0::2], d[1::2]
    keep = ze - zs >= max(min_silence_samples, 1)
    level = np.zeros(len(x) + 1, np.int32)
    np.add.at(level, zs[keep], 1)
    np.add.at(level, ze[keep], -1)
    sound = np.concatenate([[0], (np.cumsum(level)[:-1] == 0).astype(np.int8), [0]])
    on = np.flatnonzero(np.diff(sound))
    return on[0::2], on[1::2]


def fade_edges(x: np.ndarray, fade_samples: int) -> None:
    """Raised-cosine (Hann) fade-in and fade-out, in place, at both ends of every stretch of sound
    of channel ``x`` (fewer samples for a stretch too short for both): wherever a placed piece
    starts or ends, or a TTS clip has digital silence inside, the channel rises from and falls to
    near-zero instead of stepping."""
    if fade_samples <= 0:
        return
    starts, ends = sound_stretches(x, int(MIN_SILENCE * SAMPLE_RATE))
    full = np.hanning(2 * fade_samples + 2)[1 : fade_samples + 1].astype(np.float32)
    for a, b in zip(starts, ends):
        n = min(fade_samples, (b - a) // 2)
        if n <= 0:
            continue
        ramp = full if n == fade_samples else np.hanning(2 * n + 2)[1 : n + 1].astype(np.float32)
        x[a : a + n] *= ramp
        x[b - n : b] *= ramp[::-1]


def mix(
    script: SpokenScript,
    rendered: list[RenderedSegment],
    timeline: Timeline,
    *,
    loudness_dbfs: float,
    gains_db: tuple[float, float] = (0.0, 0.0),
    fade: float | None = None,
) -> RenderedDialogue:
    """Stereo float32 audio (channel 0 = main) with every word's time in the dialogue.

    Every stretch of sound fades in and out over ``fade`` seconds (default: the recipe's
    ``timing.edge_fade``), so no channel steps from silence to sound. Each channel is scaled so
    its speech RMS hits ``loudness_dbfs`` (plus its voice's gain), then lowered further if that
    would push a peak past :data:`~jmoshi_augment.constants.MIX_PEAK_LIMIT`: never clipped.
    """
    fade_samples = int(round((TimingConfig().edge_fade if fade is None else fade) * SAMPLE_RATE))
    num_samples = int(round(timeline.duration * SAMPLE_RATE))
    audio = np.zeros((2, num_samples), dtype=np.float32)
    spans: dict[int, list[tuple[int, int]]] = {MAIN: [], OTHER: []}
    words: list[AlignedWord] = []
    for p in timeline.placements:
        seg = rendered[p.segment]
        src_a = int(round(p.start * SAMPLE_RATE))
        src_b = len(seg.audio) if p.end is None else int(round(p.end * SAMPLE_RATE))
        piece = seg.audio[src_a:src_b]
        a = int(round(p.offset * SAMPLE_RATE))
        b = min(a + len(piece), num_samples)
        audio[p.channel, a:b] += piece[: b - a]
        spans[p.channel].append((a, b))
        shift = p.offset - p.start
        end = seg.duration if p.end is None else p.end
        words.extend(
            AlignedWord(w.word, shift + w.start, shift + w.end, p.channel) for w in seg.words if p.start <= w.start < end
        )

    for ch in (MAIN, OTHER):
        fade_edges(audio[ch], fade_samples)
        rms = speech_rms(audio[ch], spans[ch])
        if rms > 0:
            gain = 10 ** ((loudness_dbfs + gains_db[ch]) / 20) / rms
            peak = float(np.abs(audio[ch]).max()) * gain
            if peak > MIX_PEAK_LIMIT:
                gain *= MIX_PEAK_LIMIT / peak
            audio[ch] *= gain

    main = timeline.main_speaker
    other = next((s for s in script.speakers if s != main), "")
    words.sort(key=lambda w: (w.start, w.channel))
    return RenderedDialogue(
        id=f"{script.dialogue_id}-main{main}",
        dialogue_id=script.dialogue_id,
        corpus=script.corpus,
        audio=audio,
        words=tuple(words),
        speaker_map={"main": main, "other": other},
        planned=dict(timeline.events),
        **script_fields(script),
    )
