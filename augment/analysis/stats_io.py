"""Reading stereo sound files for turn-taking statistics: single files, folders of ``*.wav`` and
``*.jsonl`` manifests, streamed one dialogue at a time (the event logic is in :mod:`.stats_events`)."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Iterable, Iterator

from jmoshi_augment.augment.analysis.stats_events import DialogueStats, StatsOptions, analyze_energies, check_stereo
from jmoshi_augment.augment.analysis.vad import file_energies
from jmoshi_augment.errors import JmoshiError

logger = logging.getLogger(__name__)

__all__ = ["analyze_file", "analyze_paths"]


def analyze_file(path: str | Path, name: str | None = None, options: StatsOptions = StatsOptions()) -> DialogueStats:
    """Stream one stereo sound file and analyse it."""
    path = Path(path)
    if not path.is_file():
        raise JmoshiError("no such audio file", path=path)
    energy, sample_rate, num_samples = file_energies(path, options.vad)
    check_stereo(energy.shape[0], path)
    return analyze_energies(energy, sample_rate, num_samples / sample_rate, name or str(path), options)


def analyze_paths(paths: Iterable[str | Path], options: StatsOptions = StatsOptions()) -> Iterator[DialogueStats]:
    """Analyse sound files lazily. Each path is a file, a folder (every ``*.wav`` below it, sorted)
    or a ``*.jsonl`` manifest of ``{"path": ..., "duration": ...}`` lines (paths relative to it)."""
    for p in paths:
        p = Path(p)
        if p.is_dir():
            files = sorted(p.rglob("*.wav"))
            if not files:
                raise JmoshiError("folder holds no .wav files", path=p)
            for f in files:
                yield analyze_file(f, str(f.relative_to(p)), options)
        elif p.suffix == ".jsonl":
            for f, duration, line in _manifest(p):
                stats = analyze_file(f, str(f), options)
                if duration is not None and abs(stats.duration - duration) > 0.05:
                    logger.warning("%s:%d: manifest says %.2f s, file has %.2f s", p, line, duration, stats.duration)
                yield stats
        elif p.exists():
            yield analyze_file(p, p.name, options)
        else:
            raise JmoshiError("no such file or folder", path=p)


def _manifest(path: Path) -> Iterator[tuple[Path, float | None, int]]:
    with open(path, encoding="utf-8") as f:
        for line_no, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
                rel = row["path"]
                duration = row.get("duration")
                if not isinstance(rel, str) or not (duration is None or isinstance(duration, (int, float))):
                    raise TypeError("path must be a string and duration a number")
            except (json.JSONDecodeError, KeyError, TypeError, AttributeError) as e:
                raise JmoshiError(
                    f'expected a JSON object {{"path": ..., "duration": ...}} ({type(e).__name__}: {e})',
                    path=path,
                    line=line_no,
                ) from e
            target = Path(rel) if Path(rel).is_absolute() else path.parent / rel
            if not target.is_file():
                raise JmoshiError(f"listed audio file {rel!r} does not exist", path=path, line=line_no)
            yield target, None if duration is None else float(duration), line_no

