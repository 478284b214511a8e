"""Kyutai moshi-finetune's input: stereo wav + word alignments, listed in ``data.jsonl``.

Layout (as Kyutai's trainer and its DailyTalkContiguous example read it)::

    OUT/data.jsonl                {"path": "audio/ID.wav", "duration": 12.34}   (paths relative to it)
    OUT/audio/ID.wav              stereo 24 kHz, left (0) = the model's side, right (1) = the user
    OUT/audio/ID.json             {"alignments": [["word", [start_s, end_s], "SPEAKER_MAIN"], ...]}

Alignments are sorted by start (the trainer binary-searches them). Kyutai's trainer only puts
SPEAKER_MAIN words on the text stream; we keep the user's words as SPEAKER_OTHER anyway.
"""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any, Iterable

import numpy as np
import soundfile as sf

from jmoshi_augment.augment.types import MAIN, SAMPLE_RATE, RenderedDialogue
from jmoshi_augment.io import atomic_write_bytes, atomic_write_text

SPEAKER_LABELS = {0: "SPEAKER_MAIN", 1: "SPEAKER_OTHER"}
AUDIO_DIR = "audio"
MANIFEST = "data.jsonl"


def wav_bytes(audio: np.ndarray, subtype: str = "PCM_16") -> bytes:
    """[channels, samples] float → a wav file's bytes (deterministic: no timestamps inside)."""
    buf = io.BytesIO()
    sf.write(buf, np.ascontiguousarray(audio.T), SAMPLE_RATE, subtype=subtype, format="WAV")
    return buf.getvalue()


def alignments(rendered: RenderedDialogue) -> dict[str, Any]:
    words = sorted(rendered.words, key=lambda w: (w.start, w.channel))
    return {
        "alignments": [
            [w.word, [round(w.start, 3), round(w.end, 3)], SPEAKER_LABELS[w.channel]] for w in words
        ]
    }


def wav_paths(out_dir: Path, rendering_id: str) -> tuple[Path, Path]:
    base = Path(out_dir) / AUDIO_DIR / rendering_id
    return base.with_suffix(".wav"), base.with_suffix(".json")


def write_wav_dialogue(out_dir: str | Path, rendered: RenderedDialogue) -> dict[str, Any]:
    """Write the wav and its alignments (json last: its presence marks the pair complete)."""
    wav_path, json_path = wav_paths(Path(out_dir), rendered.id)
    atomic_write_bytes(wav_path, wav_bytes(rendered.audio))
    atomic_write_text(json_path, json.dumps(alignments(rendered), ensure_ascii=False))
    return manifest_entry(rendered.id, rendered.duration)


def manifest_entry(rendering_id: str, duration: float) -> dict[str, Any]:
    return {"path": f"{AUDIO_DIR}/{rendering_id}.wav", "duration": round(duration, 3)}


def write_manifest(out_dir: str | Path, entries: Iterable[dict[str, Any]]) -> Path:
    path = Path(out_dir) / MANIFEST
    atomic_write_text(path, "".join(json.dumps(e, ensure_ascii=False) + "\n" for e in entries))
    return path


def read_alignments(json_path: str | Path) -> list[tuple[str, float, float, int]]:
    """(word, start, end, channel) from an alignment file, for tests and verification."""
    data = json.loads(Path(json_path).read_text(encoding="utf-8"))
    labels = {v: k for k, v in SPEAKER_LABELS.items()}
    return [(w, float(s), float(e), labels.get(spk, MAIN)) for w, (s, e), spk in data["alignments"]]
