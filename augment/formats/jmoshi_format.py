"""nu-dialogue/moshi-finetune's formats, the trainer that made J-Moshi and J-Moshi-ext.

Layout written under ``OUT`` (the trainer's ``data/spokenwoz_sample`` layout plus its shards)::

    OUT/audio/ID.wav      stereo 24 kHz PCM_16, left = speaker A, right = speaker B
    OUT/text/ID.json      [{"speaker": "A", "word": "...", "start": s, "end": s}, ...]
    OUT/parquet/train-001-of-00N.parquet   rows {dialogue_id, A: [9, T], B: [9, T]}

so ``tools/tokenize_audio --audio_dir OUT/audio``, ``tools/tokenize_text --word_transcript_dir
OUT/text --no_whitespace_before_word ...`` and ``prepare_dataset`` reproduce the shards, or the
shards go straight to ``finetune.py --train_data_files "OUT/parquet/train-*.parquet"``.

A and B are the dialogue's two speakers, not model and user: the trainer picks which one the model
plays (``--moshi_speakers``). A is the corpus's first speaker, whichever channel our rendering made
"main". Shard rows hold text tokens in row 0 and Mimi codebooks 1-8 in rows 1-8, as Python ints in
nested lists, exactly as ``prepare_dataset.merge_text_audio`` builds them and pandas writes them
(pyarrow stores them as ``list<list<int64>>``). ``dialogue_id`` is our rendering id (the trainer
writes ``OUTPUT_PREFIX/NAME``; it only serves as a unique key). Word times are written unrounded,
so the trainer's own tokenizer recomputes exactly the text stream in our shards.
"""

from __future__ import annotations

import json
import logging
import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterator, Sequence

import numpy as np

from jmoshi_augment.augment.types import RenderedDialogue, TokenizedDialogue
from jmoshi_augment.errors import JmoshiError
from jmoshi_augment.io import atomic_output, atomic_write_bytes, atomic_write_text

if TYPE_CHECKING:
    import pandas as pd

logger = logging.getLogger(__name__)

AUDIO_DIR, TEXT_DIR, PARQUET_DIR = "audio", "text", "parquet"
TRAINER_CODEBOOKS = 8  # the trainer's rows 1-8; Moshi's LM reads 8 codebooks per speaker
DEFAULT_PREFIX = "train"  # the trainer README's shard prefix
_UNIT_RE = re.compile(r"^unit-(\d+)\.parquet$")
_PENDING_RE = re.compile(r"^\.finalize-(\d+)\.parquet$")
_UNSAFE = re.compile(r"[/\\\x00]")
META_KEY = b"jmoshi_augment"  # parquet key-value metadata: {"unit": k}, survives renames


# ------------------------------------------------------------------------------------ speakers


def _file_name(rendering_id: str) -> str:
    if not rendering_id or _UNSAFE.search(rendering_id) or rendering_id.startswith("."):
        raise JmoshiError(f"dialogue id {rendering_id!r} cannot be a file name (no '/', '\\', or leading '.')")
    return rendering_id


# ---------------------------------------------------------------------------- wav + word list


def word_list(rendered: RenderedDialogue) -> list[dict[str, Any]]:
    """Both speakers' words as the trainer's tokenizer reads them, sorted by start."""
    a = rendered.a_channel
    label = {a: "A", 1 - a: "B"}
    words = sorted(rendered.words, key=lambda w: (w.start, w.channel))
    return [{"speaker": label[w.channel], "word": w.word, "start": w.start, "end": w.end} for w in words]


def jmoshi_paths(out_dir: str | Path, rendering_id: str) -> tuple[Path, Path]:
    name = _file_name(rendering_id)
    return Path(out_dir) / AUDIO_DIR / f"{name}.wav", Path(out_dir) / TEXT_DIR / f"{name}.json"


def write_jmoshi_dialogue(out_dir: str | Path, rendered: RenderedDialogue) -> Path:
    """Write ``audio/ID.wav`` (left = A) and ``text/ID.json``; returns the wav path."""
    from jmoshi_augment.augment.formats.wav_format import wav_bytes

    wav_path, json_path = jmoshi_paths(out_dir, rendered.id)
    a = rendered.a_channel
    stereo = rendered.audio[[a, 1 - a]].astype(np.float32)
    peak = float(np.abs(stereo).max()) if stereo.size else 0.0
    if peak > 1.0:  # PCM_16 would wrap around, not saturate
        logger.warning("%s: peak %.2f > 1, clipped in the jmoshi wav", rendered.id, peak)
        stereo = np.clip(stereo, -1.0, 1.0)
    atomic_write_bytes(wav_path, wav_bytes(stereo))
    atomic_write_text(json_path, json.dumps(word_list(rendered), ensure_ascii=False))
    return wav_path


# ------------------------------------------------------------------------------------- parquet


@dataclass(frozen=True)
class JmoshiRow:
    """One parquet row: per speaker ``[1 + 8, T]`` (text tokens, then Mimi codebooks)."""

    dialogue_id: str
    A: np.ndarray
    B: np.ndarray


def jmoshi_row(item: TokenizedDialogue) -> JmoshiRow:
    """A tokenized dialogue as the trainer's row; A is the channel in ``meta["a_channel"]``."""
    if "a_channel" not in item.meta:
        raise JmoshiError("tokenized dialogue has no meta['a_channel'] (which channel is speaker A)", key=item.id)
    a = int(item.meta["a_channel"])
    n_q = item.codes.shape[1]
    if n_q < TRAINER_CODEBOOKS:
        raise JmoshiError(f"the jmoshi format needs {TRAINER_CODEBOOKS} Mimi codebooks, this dialogue has {n_q}", key=item.id)
    # Residual codebooks are nested: the first 8 of a 16- or 32-codebook encoding are the 8-codebook one.
    streams = [np.concatenate([item.text[ch][None], item.codes[ch, :TRAINER_CODEBOOKS]]).astype(np.int32) for ch in (a, 1 - a)]
    return JmoshiRow(item.id, streams[0], streams[1])


def _dataframe(rows: Sequence[JmoshiRow]) -> "pd.DataFrame":
    import pandas as pd

    # Python ints in nested lists, as prepare_dataset's ``.astype(np.int32).tolist()`` makes them.
    return pd.DataFrame([{"dialogue_id": r.dialogue_id, "A": r.A.tolist(), "B": r.B.tolist()} for r in rows])


def write_jmoshi_parquet(path: str | Path, items: Sequence[TokenizedDialogue], *, unit: int | None = None) -> Path:
    """Write one shard (temp name, then rename). ``unit`` (default: K from a ``unit-K.parquet``
    name) is stored in the file's metadata so :func:`finalize_parquet_names` can order shards."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    path = Path(path)
    if not items:
        raise JmoshiError("no dialogues to write", path=path)
    if unit is None:
        m = _UNIT_RE.match(path.name)
        unit = int(m.group(1)) if m else None
    table = pa.Table.from_pandas(_dataframe([jmoshi_row(i) for i in items]), preserve_index=False)
    if unit is not None:
        table = table.replace_schema_metadata({**table.schema.metadata, META_KEY: json.dumps({"unit": unit}).encode()})
    with atomic_output(path, "wb") as f:
        pq.write_table(table, f)
    return path


def read_jmoshi_parquet(path: str | Path) -> Iterator[JmoshiRow]:
    """Rows of a shard, as the trainer reads them (values as stored: int64)."""
    import pyarrow.parquet as pq

    path = Path(path)
    try:
        shard = pq.ParquetFile(path)
    except (OSError, ValueError) as e:  # pyarrow's ArrowInvalid is a ValueError
        raise JmoshiError(f"not a readable parquet file: {e}", path=path) from None
    missing = {"dialogue_id", "A", "B"} - set(shard.schema_arrow.names)
    if missing:
        raise JmoshiError(f"missing columns {sorted(missing)} (expected dialogue_id, A, B)", path=path)
    i = 0
    for batch in shard.iter_batches(batch_size=64, columns=["dialogue_id", "A", "B"]):  # bounded memory
        for rec in batch.to_pylist():
            try:
                yield JmoshiRow(str(rec["dialogue_id"]), np.array(rec["A"], dtype=np.int64), np.array(rec["B"], dtype=np.int64))
            except (ValueError, TypeError) as e:  # ragged rows cannot form a [9, T] array
                raise JmoshiError(f"row {i}: A/B are not rectangular [9, T] arrays ({e})", path=path, key=str(rec["dialogue_id"])) from None
            i += 1


def _unit_of(path: Path) -> int | None:
    import pyarrow.parquet as pq

    for pattern in (_UNIT_RE, _PENDING_RE):
        m = pattern.match(path.name)
        if m:
            return int(m.group(1))
    meta = pq.read_schema(path).metadata or {}
    if META_KEY in meta:
        return int(json.loads(meta[META_KEY])["unit"])
    return None


def finalize_parquet_names(folder: str | Path, prefix: str = DEFAULT_PREFIX) -> list[Path]:
    """Give a folder's shards their final names ``PREFIX-001-of-00N.parquet``, in unit order.

    Safe to call after every run: shards already renamed by an earlier call are renumbered when
    the run has grown (a rerun with more dialogues); a ``unit-K`` shard redone by a resumed run
    replaces the older shard of the same unit. Renames go through a temporary name per unit, so an
    interrupted call leaves names that the next call still understands.
    """
    folder = Path(folder)
    if not folder.is_dir():
        return []
    final_re = re.compile(rf"^{re.escape(prefix)}-\d+-of-\d+\.parquet$")
    by_unit: dict[int, list[Path]] = {}
    for p in folder.iterdir():
        if not (_UNIT_RE.match(p.name) or _PENDING_RE.match(p.name) or final_re.match(p.name)):
            continue
        k = _unit_of(p)
        if k is None:
            raise JmoshiError("shard without a unit number (not written by jmoshi-augment?)", path=p)
        by_unit.setdefault(k, []).append(p)
    rank = {_UNIT_RE: 0, _PENDING_RE: 1}
    plan: list[tuple[int, Path]] = []
    for k, paths in sorted(by_unit.items()):
        # newest kind first: a fresh unit-K beats an interrupted rename beats an old final name
        paths.sort(key=lambda p: next((r for pat, r in rank.items() if pat.match(p.name)), 2))
        for stale in paths[1:]:
            stale.unlink()
        plan.append((k, paths[0]))
    n = len(plan)
    staged = []
    for k, p in plan:
        tmp = folder / f".finalize-{k}.parquet"
        if p != tmp:
            p.replace(tmp)
        staged.append(tmp)
    out = []
    for i, tmp in enumerate(staged, 1):
        # The trainer's pattern: three-digit minimum on both numbers, never padded further
        # (train-001-of-1000, not train-0001-of-1000).
        final = folder / f"{prefix}-{i:03d}-of-{n:03d}.parquet"
        tmp.replace(final)
        out.append(final)
    return out
