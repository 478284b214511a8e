"""``jmoshi-augment acoustics RUN_DIR --recipe R``: new views of a finished run, no speech rendered.

TTS is the expensive stage; a different set of rooms, noises or voices should not pay for it again.
The clean stems are read back from the run's ``wav`` output (stereo, channel 0 = model), grouped
in the run's units (so babble draws on the same other dialogues as during ``synth``), and the
views are written to ``OUT`` (default ``RUN_DIR/acoustics``) in the recipe's formats::

    OUT/audio/ID-acK.wav + .json, OUT/data.jsonl     (wav)
    OUT/jmoshi-acoustics/{audio,text,parquet}/       (jmoshi: model side = A)
    OUT/shards/shard-K.tar                           (tar)
    OUT/units/unit-K.json                            every view's drawn parameters (resume marker)
    OUT/report.json, OUT/recipe.yaml

Views equal those ``synth`` would make with the same seed up to the PCM_16 rounding of the stems
they start from. Units already in ``OUT/units`` are skipped, so an interrupted command resumes.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import numpy as np

from jmoshi_augment.augment.run.layout import RenderingEntry, UnitRecord, read_unit_record, read_unit_records, unit_files, unit_path
from jmoshi_augment.augment.types import AlignedWord, RenderedDialogue
from jmoshi_augment.errors import JmoshiError, JmoshiErrors
from jmoshi_augment.io import atomic_write_text
from jmoshi_augment.recipe import Recipe


@dataclass(frozen=True)
class RerunSummary:
    out_dir: Path
    units_done: int
    units_resumed: int
    views: int


def summary_line(s: RerunSummary) -> str:
    return f"{s.out_dir}: {s.views} views ({s.units_done} units done, {s.units_resumed} resumed)"


def _clean_renderings(run_dir: Path, unit: UnitRecord) -> Iterator[tuple[RenderedDialogue, RenderingEntry]]:
    """The unit's clean renderings, read back from the run's wav output, with their records."""
    import soundfile as sf

    from jmoshi_augment.augment.formats.wav_format import read_alignments, wav_paths

    for e in unit.renderings:
        if e.acoustics:
            continue  # a view of the earlier run: re-augmenting starts from the clean stems
        wav, words = wav_paths(run_dir, e.id)
        if not (wav.is_file() and words.is_file()):
            raise JmoshiError("clean stem missing (the run must have the wav format: output.formats: [wav, ...])", path=wav)
        audio, rate = sf.read(str(wav), dtype="float32", always_2d=True)
        if audio.shape[1] != 2:
            raise JmoshiError(f"expected a stereo wav, got {audio.shape[1]} channels", path=wav)
        aligned = tuple(AlignedWord(w, s, t, ch) for w, s, t, ch in read_alignments(words))
        speakers = (e.speaker_map["main"], e.speaker_map["other"])
        yield RenderedDialogue(id=e.id, dialogue_id=e.dialogue_id or e.id, corpus=e.corpus or "", audio=np.ascontiguousarray(audio.T),
                               words=aligned, speaker_map=dict(e.speaker_map), speakers=speakers, voices=dict(e.voices)), e


def _check(run_dir: Path, recipe: Recipe, out_dir: Path) -> list[Path]:
    from jmoshi_augment.augment.acoustics.folders import folder_problems

    problems: list[JmoshiError] = []
    units = unit_files(run_dir)
    if not (run_dir / "recipe.json").is_file() or not units:
        problems.append(JmoshiError("not a finished run (no recipe.json and units/unit-*.json)", path=run_dir))
    if out_dir.resolve() == run_dir.resolve():
        problems.append(JmoshiError("--out is the run folder itself: its manifest and report would be replaced", path=out_dir))
    if recipe.acoustics.views == 0:
        problems.append(JmoshiError("is 0: nothing to make (set it to the number of views per rendering)", key="acoustics.views"))
    for key in ("rir_dir", "noise_dir"):
        folder = getattr(recipe.acoustics, key)
        if folder is not None:
            problems.extend(folder_problems(folder, key))
    saved = out_dir / "recipe.json"
    if saved.is_file() and json.loads(saved.read_text(encoding="utf-8")) != recipe.to_dict():
        problems.append(JmoshiError("holds views of a different recipe; choose another --out or delete it", path=out_dir))
    if problems:
        raise problems[0] if len(problems) == 1 else JmoshiErrors(problems)
    return units


def reaugment_run(run_dir: Path, recipe: Recipe, out_dir: Path | None = None, *, progress: bool = True) -> RerunSummary:
    """Write ``recipe.acoustics.views`` views of every clean rendering of ``run_dir`` (see module doc)."""
    from tqdm import tqdm

    from jmoshi_augment.augment.acoustics.outputs import acoustics_summary
    from jmoshi_augment.augment.acoustics.views import acoustic_views
    from jmoshi_augment.augment.run.output_formats import finalize, write_rendering
    from jmoshi_augment.augment.run.token_stage import token_stage_for

    run_dir = Path(run_dir)
    out_dir = Path(out_dir) if out_dir is not None else run_dir / "acoustics"
    units = _check(run_dir, recipe, out_dir)
    formats = set(recipe.output.formats)
    tokens = token_stage_for(recipe)
    out_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out_dir / "recipe.yaml", recipe.to_yaml())
    atomic_write_text(out_dir / "recipe.json", json.dumps(recipe.to_dict(), sort_keys=True, ensure_ascii=False))
    done = resumed = 0
    for path in tqdm(units, unit="unit", desc="acoustics", disable=not progress):
        unit = read_unit_record(path)
        if unit_path(out_dir, unit.unit).exists():
            resumed += 1
            continue
        pairs = list(_clean_renderings(run_dir, unit))
        views = acoustic_views([r for r, _ in pairs], recipe.acoustics, recipe.seed)
        for v in views:
            write_rendering(out_dir, v, formats)
        if tokens is not None and views:
            tokens.write(out_dir, unit.unit, views)
        clean = {r.id: e for r, e in pairs}
        entries = [RenderingEntry(id=v.id, dialogue_id=v.dialogue_id, duration=round(v.duration, 3),
                                  stats=clean[v.meta["acoustics"]["view_of"]].stats, acoustics=v.meta["acoustics"])
                   for v in views]
        record = UnitRecord(unit=unit.unit, dialogues=unit.dialogues, renderings=entries)
        atomic_write_text(unit_path(out_dir, unit.unit), record.to_json())
        done += 1
    entries = [e for r in read_unit_records(out_dir).ordered() for e in r.renderings]
    finalize(out_dir, entries, formats)  # the manifest and shard names, as a synth run finishes them
    report = {"run": str(run_dir), "views": len(entries), "acoustics": acoustics_summary(entries)}
    atomic_write_text(out_dir / "report.json", json.dumps(report, ensure_ascii=False, indent=1))
    return RerunSummary(out_dir, done, resumed, len(entries))
