"""Re-read written training data and report what a trainer would trip over, per dialogue.

Understands every output of this package: tar token shards (``*.tar``), J-Moshi parquet shards
(``*.parquet``), J-Moshi wav + word lists (``audio/ID.wav`` + ``text/ID.json``) and Kyutai
moshi-finetune wav + alignments (``ID.wav`` + ``ID.json`` side by side, listed in ``data.jsonl``).
A folder is searched recursively. Checks: shapes and dtypes, token ids within the tokenizer's
vocabulary and Mimi's codebook size, no byte-fallback pieces on a text stream (given the
tokenizer), text and audio streams of the same length, the frame count that the audio's duration
implies, word times inside the audio and sorted. Inside a synth output folder, every tar and
parquet shard is also checked against the unit record that lists its dialogues (``verify_units``),
and every problem names the file that is wrong (the wav for audio faults, the json for word faults).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

import numpy as np

from jmoshi_augment.augment.acoustics.outputs import JMOSHI_VIEWS_DIR
from jmoshi_augment.augment.formats.jmoshi_format import AUDIO_DIR, TEXT_DIR, TRAINER_CODEBOOKS, read_jmoshi_parquet
from jmoshi_augment.augment.formats.shards import decode_item, read_tar_members
from jmoshi_augment.augment.formats import verify_units
from jmoshi_augment.augment.tokens.tokenize import num_frames
from jmoshi_augment.augment.types import SAMPLE_RATE
from jmoshi_augment.constants import MIMI_CARDINALITY
from jmoshi_augment.errors import JmoshiError

TIME_TOLERANCE = 0.01  # s: word ends may round past the last sample
REQUIRED_META = ("id", "dialogue_id", "corpus", "speaker_map", "duration")


@dataclass(frozen=True)
class Problem:
    path: str
    item: str | None  # dialogue id / shard key, None for the whole file
    message: str

    def __str__(self) -> str:
        return f"{self.path}" + (f" [{self.item}]" if self.item else "") + f": {self.message}"


@dataclass
class VerifyResult:
    problems: list[Problem] = field(default_factory=list)
    files: int = 0
    dialogues: int = 0
    # what each shard holds, for the cross-check with the unit records: path -> (unit, members)
    tar_members: dict[Path, list[str]] = field(default_factory=dict)
    parquet_members: dict[Path, tuple[int | None, list[str]]] = field(default_factory=dict)


@dataclass(frozen=True)
class Limits:
    vocab_size: int | None  # text ids must be < this (None: only >= 0 is checked)
    card: int  # codes must be < this
    byte_ids: frozenset[int] = frozenset()  # byte-fallback pieces: never placed on the text stream


def _byte_problem(name: str, text: np.ndarray, limits: Limits) -> str | None:
    if not limits.byte_ids:
        return None
    hits = np.isin(text, list(limits.byte_ids))
    return f"{name} holds {int(hits.sum())} byte-fallback piece(s)" if hits.any() else None


def _range_problem(name: str, values: np.ndarray, upper: int | None) -> str | None:
    if values.size == 0:
        return None
    lo, hi = int(values.min()), int(values.max())
    if lo < 0 or (upper is not None and hi >= upper):
        return f"{name} ids span [{lo}, {hi}], outside [0, {upper if upper is not None else 'inf'})"
    return None


# ------------------------------------------------------------------------------------------ tar


_TAR_BLOCK = 512


def _tar_end_problem(path: Path) -> str | None:
    """A tar ends with two zero blocks (the end-of-archive marker). One cut at a member boundary
    still reads as a valid archive, only shorter: its missing marker is what gives it away."""
    size = path.stat().st_size
    with open(path, "rb") as f:
        f.seek(max(0, size - 2 * _TAR_BLOCK))
        tail = f.read()
    if size % _TAR_BLOCK or size < 2 * _TAR_BLOCK or tail.count(0) != len(tail):
        return "no end-of-archive marker: the file was cut short (interrupted copy or download?)"
    return None


def _check_tar(path: Path, limits: Limits, report: VerifyResult) -> None:
    seen: set[str] = set()
    keys = report.tar_members.setdefault(path, [])
    end = _tar_end_problem(path)
    if end:
        report.problems.append(Problem(str(path), None, end))
    for key, group in read_tar_members(path):
        report.dialogues += 1
        keys.append(key)
        try:
            item = decode_item(key, group, path)
        except JmoshiError as e:
            report.problems.append(Problem(str(path), key, e.message))
            continue
        problems = []
        if item.id in seen:
            problems.append("duplicate dialogue id in this shard")
        seen.add(item.id)
        problems += [f"meta lacks {k!r}" for k in REQUIRED_META if k not in item.meta]
        codes, text = item.codes, item.text
        if codes.dtype != np.int16:
            problems.append(f"codes dtype {codes.dtype}, expected int16")
        if text.dtype != np.int32:
            problems.append(f"text dtype {text.dtype}, expected int32")
        if codes.ndim != 3 or codes.shape[0] != 2:
            problems.append(f"codes shape {codes.shape}, expected [2, n_q, T]")
        elif text.shape != (2, codes.shape[2]):
            problems.append(f"text shape {text.shape} does not match codes {codes.shape} (expected [2, T])")
        else:
            n_q = item.meta.get("n_q")
            if n_q is not None and n_q != codes.shape[1]:
                problems.append(f"meta says n_q={n_q}, codes hold {codes.shape[1]} codebooks")
            samples = item.meta.get("num_samples", round(item.duration * SAMPLE_RATE))
            if codes.shape[2] != num_frames(int(samples)):
                problems.append(
                    f"{codes.shape[2]} frames, but {item.duration:.3f} s of audio gives {num_frames(int(samples))}"
                )
        problems += [p for p in (_range_problem("code", codes, limits.card), _range_problem("text", text, limits.vocab_size),
                                 _byte_problem("text", text, limits)) if p]
        report.problems += [Problem(str(path), item.id, m) for m in problems]


# -------------------------------------------------------------------------------------- parquet


def _check_parquet(path: Path, limits: Limits, report: VerifyResult) -> None:
    import pyarrow.parquet as pq

    try:
        schema = pq.read_schema(path)
    except (OSError, ValueError) as e:
        report.problems.append(Problem(str(path), None, f"not a readable parquet file: {e}"))
        return
    if schema.names != ["dialogue_id", "A", "B"]:
        report.problems.append(Problem(str(path), None, f"columns {schema.names}, expected ['dialogue_id', 'A', 'B']"))
    for name in ("A", "B"):
        if name in schema.names and str(schema.field(name).type) not in (
            "list<element: list<element: int64>>", "list<element: list<element: int32>>",
            "list<item: list<item: int64>>", "list<item: list<item: int32>>",
        ):
            report.problems.append(Problem(str(path), None, f"column {name} has type {schema.field(name).type}, expected list<list<int>>"))
    audio_dir = path.parent.parent / AUDIO_DIR
    seen: set[str] = set()
    from jmoshi_augment.augment.formats.jmoshi_format import _unit_of

    try:
        unit = _unit_of(path)
    except (OSError, ValueError, KeyError):
        unit = None
    ids = report.parquet_members.setdefault(path, (unit, []))[1]
    for row in read_jmoshi_parquet(path):
        report.dialogues += 1
        ids.append(row.dialogue_id)
        problems = []
        if row.dialogue_id in seen:
            problems.append("duplicate dialogue_id in this shard")
        seen.add(row.dialogue_id)
        streams = {"A": row.A, "B": row.B}
        for name, s in streams.items():
            if s.ndim != 2 or s.shape[0] != 1 + TRAINER_CODEBOOKS:
                problems.append(f"{name} has shape {s.shape}, expected [{1 + TRAINER_CODEBOOKS}, T]")
                continue
            problems += [p for p in (_range_problem(f"{name} text", s[0], limits.vocab_size),
                                     _range_problem(f"{name} code", s[1:], limits.card),
                                     _byte_problem(f"{name} text", s[0], limits)) if p]
        if row.A.ndim == 2 and row.B.ndim == 2 and row.A.shape[1] != row.B.shape[1]:
            problems.append(f"A has {row.A.shape[1]} frames, B {row.B.shape[1]}")
        wav = audio_dir / f"{Path(row.dialogue_id).name}.wav"
        if row.A.ndim == 2 and wav.is_file():
            import soundfile as sf

            expected = num_frames(sf.info(str(wav)).frames)
            if row.A.shape[1] != expected:
                problems.append(f"{row.A.shape[1]} frames, but {wav.name} gives {expected}")
        report.problems += [Problem(str(path), row.dialogue_id, m) for m in problems]


# ------------------------------------------------------------------------------------ wav + json


def _check_wav_json(wav: Path, words_json: Path, limits: Limits, report: VerifyResult, sp: Any = None) -> None:
    import soundfile as sf

    report.dialogues += 1
    item = wav.stem
    problems: list[str] = []  # about the json (word list / alignments)
    try:
        info = sf.info(str(wav))
    except (RuntimeError, sf.LibsndfileError) as e:
        report.problems.append(Problem(str(wav), item, f"not a readable wav: {e}"))
        return
    wav_problems = []
    if info.channels != 2:
        wav_problems.append(f"{info.channels} channel(s), expected stereo")
    if info.samplerate != SAMPLE_RATE:
        wav_problems.append(f"sample rate {info.samplerate}, expected {SAMPLE_RATE}")
    report.problems += [Problem(str(wav), item, m) for m in wav_problems]
    duration = info.frames / info.samplerate
    try:
        data = json.loads(words_json.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        report.problems.append(Problem(str(words_json), item, f"not valid json: {e}"))
        return
    words: list[tuple[str, float, float, str]] = []
    if isinstance(data, list):  # J-Moshi word list
        labels = ("A", "B")
        for i, w in enumerate(data):
            if not (isinstance(w, dict) and {"speaker", "word", "start", "end"} <= set(w)):
                problems.append(f"entry {i} is not {{speaker, word, start, end}}")
                continue
            words.append((w["word"], w["start"], w["end"], w["speaker"]))
    elif isinstance(data, dict) and isinstance(data.get("alignments"), list):  # Kyutai alignments
        labels = ("SPEAKER_MAIN", "SPEAKER_OTHER")
        for i, a in enumerate(data["alignments"]):
            try:
                word, (start, end), speaker = a
            except (TypeError, ValueError):
                problems.append(f"alignment {i} is not [word, [start, end], speaker]")
                continue
            words.append((word, start, end, speaker))
    else:
        problems.append("json is neither a word list nor {'alignments': [...]}")
        labels = ()
    starts = []
    for i, (word, start, end, speaker) in enumerate(words):
        if speaker not in labels:
            problems.append(f"word {i} ({word!r}): speaker {speaker!r}, expected one of {list(labels)}")
        if not isinstance(word, str) or not word:
            problems.append(f"word {i}: empty or not a string")
        if not all(isinstance(t, (int, float)) and math.isfinite(t) for t in (start, end)):
            problems.append(f"word {i} ({word!r}): non-numeric time")
            continue
        if not 0 <= start <= end <= duration + TIME_TOLERANCE:
            problems.append(f"word {i} ({word!r}): [{start}, {end}] outside the audio's [0, {duration:.3f}] s")
        starts.append(start)
    if any(b < a for a, b in zip(starts, starts[1:])):
        problems.append("words are not sorted by start")
    if sp is not None and not problems and not wav_problems:
        from jmoshi_augment.augment.tokens.text_tokens import place_text_tokens

        t = num_frames(info.frames)
        for label in labels:
            _, dropped = place_text_tokens([(w, s, e) for w, s, e, spk in words if spk == label], sp, t)
            if dropped:
                problems.append(f"{dropped} text tokens of {label} find no frame")
    report.problems += [Problem(str(words_json), item, m) for m in problems]


def _wav_json_pairs(root: Path) -> Iterable[tuple[Path, Path]]:
    for wav in sorted(root.rglob("*.wav")) if root.is_dir() else [root]:
        side = wav.with_suffix(".json")
        jmoshi = wav.parent.parent / TEXT_DIR / f"{wav.stem}.json"
        if side.is_file():
            yield wav, side
        elif wav.parent.name == AUDIO_DIR and jmoshi.is_file():
            yield wav, jmoshi
        else:
            yield wav, side  # reported as missing


# ---------------------------------------------------------------------------------------- entry


def verify_files(path: str | Path, *, vocab_size: int | None = None, card: int = MIMI_CARDINALITY, sp: Any = None) -> VerifyResult:
    """Check every output file under ``path`` (a file or a folder). ``sp`` (a SentencePiece model)
    sets ``vocab_size`` and also checks that wav+json word lists place all their tokens."""
    path = Path(path)
    if not path.exists():
        raise JmoshiError("no such file or folder", path=path)
    if sp is not None and vocab_size is None:
        vocab_size = sp.vocab_size()
    byte_ids = frozenset(i for i in range(sp.vocab_size()) if sp.is_byte(i)) if sp is not None else frozenset()
    limits = Limits(vocab_size, card, byte_ids)
    report = VerifyResult()
    files = sorted(path.rglob("*")) if path.is_dir() else [path]
    for f in files:
        if f.name.startswith(".") or ".tmp-" in f.name:
            continue
        try:
            if f.suffix == ".tar":
                report.files += 1
                _check_tar(f, limits, report)
            elif f.suffix == ".parquet":
                report.files += 1
                _check_parquet(f, limits, report)
        except JmoshiError as e:
            report.problems.append(Problem(e.path or str(f), e.key, e.message))
    for wav, words_json in _wav_json_pairs(path) if (path.is_dir() or path.suffix == ".wav") else []:
        report.files += 1
        if not words_json.is_file():
            report.problems.append(Problem(str(wav), wav.stem, "no word list / alignments json next to it"))
            continue
        _check_wav_json(wav, words_json, limits, report, sp)
    if report.files == 0:
        raise JmoshiError("nothing to verify: no .tar, .parquet or .wav files", path=path)
    _check_units(path, report)
    return report


def _check_units(path: Path, report: VerifyResult) -> None:
    """Inside a synth output folder: each shard against its unit record, and (when a whole folder
    is verified) every unit against its shards."""
    run_dir = verify_units.run_dir_of(path)
    if run_dir is None or not (report.tar_members or report.parquet_members):
        return
    records = verify_units.read_unit_records(run_dir, strict=False)
    report.problems += [Problem(str(e.path), None, e.message) for e in records.unreadable]
    for tar, keys in report.tar_members.items():
        k = verify_units.tar_unit(tar)
        report.problems += [Problem(str(tar), None, m) for m in verify_units.compare_members(records, k, keys, keyed=True)]
    for parquet, (k, ids) in report.parquet_members.items():
        views = parquet.parent.parent.name == JMOSHI_VIEWS_DIR  # docs/acoustics.md
        report.problems += [Problem(str(parquet), None, m) for m in verify_units.compare_members(records, k, ids, keyed=False, views=views)]
    if path.is_dir():
        for what, units, folder in (
            ("tar shard", {verify_units.tar_unit(t) for t in report.tar_members}, run_dir / "shards"),
            ("parquet shard", {k for k, _ in report.parquet_members.values()}, run_dir / "jmoshi" / "parquet"),
        ):
            if units and folder.resolve().is_relative_to(path.resolve()):
                report.problems += [Problem(str(folder), None, m) for m in verify_units.missing_shards(records, units, what)]


def verify_path(path: str | Path, *, vocab_size: int | None = None, card: int = MIMI_CARDINALITY, sp: Any = None) -> list[Problem]:
    """Problems found in the outputs under ``path`` (empty when everything is consistent)."""
    return verify_files(path, vocab_size=vocab_size, card=card, sp=sp).problems
