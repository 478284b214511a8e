"""What precedes a silence: the hold/yield cue of each pause and gap, read from the words.

A silence inside a turn is marked as a hold by what comes before it (a filler, a continuative
particle, a clause comma, non-final pitch) and a turn end by a sentence end; a model learns which
silence invites it to speak from exactly that. ``stats`` measures pauses and gaps on the audio;
this module sets each one beside the last word said before it, for runs that have word timings
(``audio/ID.json``) and unit records (``units/unit-*.json``, which hold the script and so where
each sentence ends). Human recordings have neither, so the table is ours only.

Categories (first match wins): **sentence end** (the last word of a script sentence),
**backchannel** (the last word of a listener's backchannel), **filler**, **particle** (a word
that is a particle by surface: て, けど, から, ね, ...), **comma** (any other word before a 、),
**other**. The unit record keeps surfaces and readings, not parts of speech, so filler and
particle are read from the surface; an ambiguous あの/その counts as a filler only before a comma.
"""

from __future__ import annotations

import logging
from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable, Sequence

import numpy as np

from jmoshi_augment.augment.analysis.stats_events import DialogueStats
from jmoshi_augment.augment.text.punctuation import CLAUSE, PROSODIC

if TYPE_CHECKING:
    from jmoshi_augment.augment.run.layout import RenderingEntry

logger = logging.getLogger(__name__)

CUES = ("sentence end", "backchannel", "filler", "particle", "comma", "other")
# Fillers of Japanese conversation (Watanabe & Shirahata 2019; docs/turn-taking.md) as said alone.
_FILLERS = frozenset({"えー", "えっと", "えーと", "ええと", "えと", "まあ", "まー", "うーん", "んー", "あのー", "そのー"})
_FILLERS_BEFORE_COMMA = frozenset({"あの", "その", "あー", "ま"})  # also demonstratives/words without a comma
# Particles a speaker stops on mid-turn: connective (continuative), case, topic and final particles.
_PARTICLES = frozenset({
    "て", "で", "が", "けど", "けれど", "けれども", "から", "ので", "し", "のに", "ながら", "たり", "ば", "と", "って",
    "ね", "よ", "な", "さ", "わ", "は", "も", "を", "に", "へ", "や", "の", "とか", "まで", "より", "でも", "なら",
})
# A word's end may read up to this much before the energy offset (the VAD's 10 ms frames, soft
# decays), or after it (a TTS's trailing phone below the VAD's threshold).
_TOLERANCE = 0.15


def _bare(surface: str) -> str:
    return surface.rstrip(PROSODIC + "〜ー,.!? ")


def word_cue(surface: str, sentence_end: bool, backchannel: bool) -> str:
    """The category of the last word before a silence."""
    if backchannel:
        return "backchannel"
    if sentence_end:
        return "sentence end"
    bare = _bare(surface)
    comma = surface.endswith((CLAUSE, ","))
    if bare in _FILLERS or (comma and bare in _FILLERS_BEFORE_COMMA):
        return "filler"
    if bare in _PARTICLES:
        return "particle"
    return "comma" if comma else "other"


def label_words(alignments: Sequence[tuple[str, float, float, int]], script: Sequence[Sequence[Any]],
                speaker_map: dict[str, str]) -> list[tuple[float, int, str]]:
    """``(end, channel, cue)`` of every aligned word (``(word, start, end, channel)`` as
    :func:`~jmoshi_augment.augment.formats.wav_format.read_alignments` gives them). Each channel's
    words are matched in order against its speaker's script sentences; a word that does not
    continue them is a backchannel."""
    channel_of = {speaker_map.get("main"): 0, speaker_map.get("other"): 1}
    flat: dict[int, list[tuple[str, bool]]] = {0: [], 1: []}
    for speaker, kind, _text, words in script:
        if kind != "speech" or speaker not in channel_of:
            continue
        for k, w in enumerate(words):
            flat[channel_of[speaker]].append((w[0], k == len(words) - 1))
    cursor = {0: 0, 1: 0}
    out = []
    for surface, _start, end, ch in sorted(alignments, key=lambda a: a[1]):
        seq, k = flat[ch], cursor[ch]
        if k < len(seq) and seq[k][0] == surface:
            cursor[ch] = k + 1
            out.append((float(end), ch, word_cue(surface, seq[k][1], False)))
        else:
            out.append((float(end), ch, word_cue(surface, False, True)))
    return out


def cues_before(silences: np.ndarray, words: list[tuple[float, int, str]]) -> Counter:
    """For each silence ``[start, end]``, the cue of the word that ends last no later than
    ``_TOLERANCE`` after its start (the speech it follows)."""
    out: Counter = Counter()
    if not words:
        return out
    ends = np.asarray([w[0] for w in words])
    order = np.argsort(ends, kind="stable")
    ends = ends[order]
    for start, _end in np.asarray(silences).reshape(-1, 2):
        k = int(np.searchsorted(ends, start + _TOLERANCE, side="right")) - 1
        if k >= 0 and start - ends[k] <= 1.0:
            out[words[order[k]][2]] += 1
        else:
            out["other"] += 1
    return out


def dialogue_cues(stats: DialogueStats, alignments: Sequence[Sequence[Any]], script: Sequence[Sequence[Any]],
                  speaker_map: dict[str, str]) -> dict[str, Counter]:
    """Cue counts for the pauses and the gaps of one rendering, from its word timings and script
    (a unit-record entry's, or a :class:`~jmoshi_augment.augment.types.RenderedDialogue`'s)."""
    words = label_words(alignments, script, speaker_map)
    return {"pauses": cues_before(stats.pauses, words), "gaps": cues_before(stats.gaps, words)}


def unit_entries(run_dir: Path) -> dict[str, "RenderingEntry"]:
    """Every rendering's unit-record entry by id, through the run folder's one reader."""
    from jmoshi_augment.augment.run.layout import read_unit_records

    records = read_unit_records(run_dir, strict=False)
    for problem in records.unreadable:
        logger.warning("%s: its dialogues get no silence cues", problem)
    return {e.id: e for r in records.ordered() for e in r.renderings}


def cues_for_rendering(stats: DialogueStats, run_dir: Path, rendering_id: str,
                       entries: dict[str, "RenderingEntry"]) -> dict[str, Counter] | None:
    """Cue counts of one rendering of a run folder (``RUN/audio/ID.json`` word timings and its
    entry of the ``RUN/units/`` records, ``entries``); ``None`` when either is not there."""
    from jmoshi_augment.augment.formats.wav_format import read_alignments

    alignment = run_dir / "audio" / f"{rendering_id}.json"
    entry = entries.get(rendering_id) if alignment.is_file() else None
    if entry is None:
        return None
    try:
        alignments = read_alignments(alignment)
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return dialogue_cues(stats, alignments, entry.script, entry.speaker_map)


def cues_for_stats(stats: Iterable[DialogueStats], run_dir: Path | None = None) -> dict[str, dict[str, float]] | None:
    """Pooled cue shares of a set: each dialogue analysed from ``RUN/audio/ID.wav`` (its name a
    wav path, as ``stats`` reads files and manifests), or named by rendering id in ``run_dir``."""
    per = []
    read: dict[Path, dict[str, RenderingEntry]] = {}  # run folder → its unit-record entries
    for s in stats:
        if run_dir is not None:
            folder, rid = run_dir.resolve(), s.name
        elif s.name.endswith(".wav"):
            folder, rid = Path(s.name).resolve().parent.parent, Path(s.name).stem
        else:
            per.append(None)
            continue
        if folder not in read:
            read[folder] = unit_entries(folder) if (folder / "units").is_dir() else {}
        per.append(cues_for_rendering(s, folder, rid, read[folder]))
    return pool_cues(per)


def pool_cues(per_dialogue: Iterable[dict[str, Counter] | None]) -> dict[str, dict[str, float]] | None:
    """Shares of each cue among the pauses and among the gaps, pooled; ``None`` with no records."""
    total = {"pauses": Counter(), "gaps": Counter()}
    seen = False
    for d in per_dialogue:
        if d is None:
            continue
        seen = True
        for kind in total:
            total[kind].update(d[kind])
    if not seen:
        return None
    out: dict[str, dict[str, float]] = {}
    for kind, counts in total.items():
        n = sum(counts.values())
        out[kind] = {"n": float(n), **{c: (counts[c] / n if n else float("nan")) for c in CUES}}
    return out


def cue_rows(cues: dict[str, dict[str, dict[str, float]] | None]) -> list[str]:
    """Markdown table: one row per cue, a column per set and silence kind; empty with no records."""
    sets = {n: c for n, c in cues.items() if c}
    if not sets:
        return []
    head = ["what precedes the silence"] + [f"{n}: {kind} (n={int(c[kind]['n'])})" for n, c in sets.items()
                                            for kind in ("pauses", "gaps")]
    rows = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for cue in CUES:
        vals = [c[kind][cue] for c in sets.values() for kind in ("pauses", "gaps")]
        rows.append("| " + " | ".join([cue] + ["–" if v != v else f"{100 * v:.0f} %" for v in vals]) + " |")
    return rows
