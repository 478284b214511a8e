"""Best of N: render a dialogue with N seeds, score every candidate, keep the best.

J-Moshi-ext reportedly generated 10 candidates per dialogue with different TTS seeds and kept the
one with the lowest ASR error (docs/method.md, "Best of N"; a secondary source). A neural TTS that
chooses its own timing can also drift from the turn-taking we want, so scoring is pluggable:

- :class:`TurnTakingScorer`: distance of the realised turn-taking (the energy detector of
  :mod:`.stats`, as for every report) from a target: the planned timeline's events, or the human
  reference measured on J-Moshi's resynthesised dialogues;
- :class:`CerScorer`: character error rate of an ASR transcript against the script, per channel,
  with a local model directory (faster-whisper / CTranslate2 or a transformers checkpoint) or any
  ``transcribe(audio_16k) -> str`` callable.

Scores are "lower is better"; a candidate's total is the weighted sum. Every candidate's scores
go into the kept rendering's ``meta["candidates"]`` so reports can show the spread.
"""

from __future__ import annotations

import logging
import math
import unicodedata
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, Callable, Mapping, Protocol, Sequence

import numpy as np

from jmoshi_augment.augment.analysis.reference import HUMAN_REFERENCE
from jmoshi_augment.augment.speech.timing_state import PlanEvent
from jmoshi_augment.augment.types import MAIN, OTHER, SAMPLE_RATE, RenderedDialogue, SpokenScript, Timeline
from jmoshi_augment.errors import JmoshiError

logger = logging.getLogger(__name__)


class Scorer(Protocol):
    name: str

    def __call__(self, rendered: RenderedDialogue, script: SpokenScript) -> float:
        """Lower is better; ``nan``/``inf`` mark a candidate that cannot be judged."""
        ...


# ----------------------------------------------------------------------------------- turn-taking

# Relative tolerance per statistic: a miss by this much costs 1 (the human reference values, and
# an absolute 0.3 for the share, so no term can dominate because of its unit).
TURN_TAKING_SCALES: dict[str, float] = {
    "ipus_per_min": HUMAN_REFERENCE["ipus_per_min"],
    "overlapped_share": 0.3,
    "within_overlaps_per_min": HUMAN_REFERENCE["within_overlaps_per_min"],
    "gap_median": 0.3,
}


@dataclass(frozen=True)
class TurnTakingTarget:
    """Wanted values of :func:`~jmoshi_augment.augment.analysis.stats.summarize` keys (None: not judged)."""

    ipus_per_min: float | None = None
    overlapped_share: float | None = None
    within_overlaps_per_min: float | None = None
    gap_median: float | None = None

    @classmethod
    def human(cls) -> "TurnTakingTarget":
        return cls(**{k: HUMAN_REFERENCE[k] for k in TURN_TAKING_SCALES if k in HUMAN_REFERENCE})

    @classmethod
    def from_timeline(cls, timeline: Timeline) -> "TurnTakingTarget":
        """What the planner asked for: overlapped share of speaker changes, backchannels and
        placed stretches of speech per minute."""
        e, minutes = timeline.events, timeline.duration / 60.0
        changes = e.get(PlanEvent.SPEAKER_CHANGES, 0)
        overlapped = e.get(PlanEvent.OVERLAPS, 0) + e.get(PlanEvent.INTERRUPTIONS, 0)
        return cls(
            # stretches the planner joins (silence < 200 ms) make one IPU
            ipus_per_min=(len(timeline.placements) - e.get(PlanEvent.JOINS, 0)) / minutes if minutes > 0 else None,
            overlapped_share=overlapped / changes if changes else None,
            within_overlaps_per_min=e.get(PlanEvent.BACKCHANNELS, 0) / minutes if minutes > 0 else None,
        )

    def items(self) -> list[tuple[str, float]]:
        return [(k, v) for k, v in asdict(self).items() if v is not None]


@dataclass(frozen=True)
class TurnTakingScorer:
    """Mean scaled absolute difference between realised and target statistics."""

    target: TurnTakingTarget = field(default_factory=TurnTakingTarget.human)
    name: str = "turn_taking"

    def realised(self, rendered: RenderedDialogue) -> dict[str, float]:
        from jmoshi_augment.augment.analysis.stats import analyze, summarize

        return summarize([analyze(rendered.audio, SAMPLE_RATE, name=rendered.id)])

    def __call__(self, rendered: RenderedDialogue, script: SpokenScript) -> float:
        got = self.realised(rendered)
        terms = []
        for key, want in self.target.items():
            value = got.get(key, math.nan)
            if math.isnan(value):  # e.g. no gap at all: as far from any wanted median as it gets
                value = 0.0
            terms.append(abs(value - want) / TURN_TAKING_SCALES[key])
        return float(np.mean(terms)) if terms else 0.0


# -------------------------------------------------------------------------------------------- CER


def normalize_for_cer(text: str) -> str:
    """NFKC, no spaces or punctuation: ASR systems disagree on those, not on what was said."""
    text = unicodedata.normalize("NFKC", text).lower()
    return "".join(c for c in text if not (c.isspace() or unicodedata.category(c)[0] in "PSZ"))


def edit_distance(a: str, b: str) -> int:
    """Levenshtein distance (one row of the DP table at a time)."""
    if len(a) < len(b):
        a, b = b, a
    codes = np.frombuffer(b.encode("utf-32-le"), dtype=np.uint32)
    prev = np.arange(len(b) + 1)
    for i, ca in enumerate(a, 1):
        cur = np.empty_like(prev)
        cur[0] = i
        sub = prev[:-1] + (codes != ord(ca))
        for j in range(1, len(b) + 1):  # insertion depends on the cell to the left
            cur[j] = min(sub[j - 1], prev[j] + 1, cur[j - 1] + 1)
        prev = cur
    return int(prev[-1])


Transcriber = Callable[[np.ndarray], str]  # mono float32 at 16 kHz → text
ASR_RATE = 16_000


@dataclass
class CerScorer:
    """Pooled CER of both channels: Σ edits / Σ reference characters, each channel transcribed on
    its own against the words the rendering says it holds."""

    transcribe: Transcriber
    name: str = "cer"

    def __call__(self, rendered: RenderedDialogue, script: SpokenScript) -> float:
        from scipy.signal import resample_poly

        edits = chars = 0
        for ch in (MAIN, OTHER):
            ref = normalize_for_cer("".join(w.word for w in rendered.channel_words(ch)))
            if not ref:
                continue
            audio = resample_poly(rendered.audio[ch].astype(np.float64), ASR_RATE // 1000, SAMPLE_RATE // 1000)
            hyp = normalize_for_cer(self.transcribe(audio.astype(np.float32)))
            edits += edit_distance(hyp, ref)
            chars += len(ref)
        return edits / chars if chars else math.nan

    @classmethod
    def from_model_dir(cls, path: str | Path, *, device: str = "cpu", language: str = "ja") -> "CerScorer":
        return cls(load_transcriber(path, device=device, language=language))


def load_transcriber(path: str | Path, *, device: str = "cpu", language: str = "ja") -> Transcriber:
    """A local ASR model directory → transcriber: CTranslate2 (``model.bin``) through faster-whisper,
    otherwise a transformers ASR checkpoint (``config.json``). Never downloads."""
    path = Path(path).expanduser()
    if not path.is_dir():
        raise JmoshiError("ASR model directory not found", path=path, key="candidates.asr_model")
    if (path / "model.bin").is_file():
        try:
            from faster_whisper import WhisperModel
        except ImportError:
            raise JmoshiError("this CTranslate2 ASR model needs faster-whisper: pip install faster-whisper",
                              path=path, key="candidates.asr_model") from None
        model = WhisperModel(str(path), device="cuda" if device.startswith("cuda") else "cpu", local_files_only=True)

        def fw(audio: np.ndarray) -> str:
            segments, _ = model.transcribe(audio, language=language, beam_size=1, vad_filter=False)
            return "".join(s.text for s in segments)

        return fw
    if (path / "config.json").is_file():
        try:
            from transformers import pipeline
        except ImportError:
            raise JmoshiError("this ASR model needs transformers: pip install transformers",
                              path=path, key="candidates.asr_model") from None
        asr = pipeline("automatic-speech-recognition", model=str(path), device=device)
        kwargs: dict[str, Any] = {"generate_kwargs": {"language": language}} if "whisper" in str(asr.model.config.model_type) else {}

        def hf(audio: np.ndarray) -> str:
            return str(asr({"raw": audio, "sampling_rate": ASR_RATE}, **kwargs)["text"])

        return hf
    raise JmoshiError("not an ASR model directory: expected model.bin (faster-whisper) or config.json (transformers)",
                      path=path, key="candidates.asr_model")


# -------------------------------------------------------------------------------------- selection


@dataclass(frozen=True)
class CandidateTrace:
    """One candidate's trace: its seed, every scorer's score, its weighted total, and why it was not
    kept (a render failure, a score that cannot be judged, or a higher total than the winner's)."""

    index: int
    seed: int | None
    scores: dict[str, float]
    total: float
    failed: str | None = None  # why the candidate could not be rendered
    lost: str | None = None  # why another candidate was kept (None for the winner)
    winner: bool = False

    def to_dict(self) -> dict[str, Any]:
        r: dict[str, Any] = {"index": self.index, "seed": self.seed, "total": _json_float(self.total),
                             "scores": {k: _json_float(v) for k, v in self.scores.items()}, "winner": self.winner}
        if self.failed:
            r["failed"] = self.failed
        if self.lost:
            r["lost"] = self.lost
        return r


def _json_float(x: float) -> float | None:
    return None if math.isnan(x) or math.isinf(x) else round(float(x), 6)


@dataclass
class Selection:
    best: RenderedDialogue | None  # None when every candidate failed
    index: int
    reports: list[CandidateTrace]

    def to_dict(self) -> dict[str, Any]:
        """The provenance a unit record keeps per rendering (and per rejected dialogue)."""
        return {"winner": self.index if self.best is not None else None, "candidates": [r.to_dict() for r in self.reports]}

    def failure_summary(self) -> str:
        """One line naming every candidate's failure, for a dialogue whose candidates all failed."""
        parts = [f"#{r.index} (seed {r.seed}): {r.failed or r.lost or 'not judged'}" for r in self.reports]
        return f"all {len(self.reports)} candidates failed: " + "; ".join(parts)


def _why_lost(report: CandidateTrace, best: CandidateTrace) -> str:
    if math.isinf(report.total) or math.isnan(report.total):
        unjudged = [k for k, v in report.scores.items() if math.isnan(v) or math.isinf(v)]
        return f"could not be judged by {', '.join(unjudged) or 'the scorers'}"
    if report.total == best.total:
        return f"tied with candidate {best.index} (total {best.total:.4g}), which comes first"
    return f"total {report.total:.4g} > {best.total:.4g} of candidate {best.index}"


def select_best(candidates: Sequence[RenderedDialogue | BaseException], script: SpokenScript,
                scorers: Sequence[tuple[Scorer, float]], seeds: Sequence[int | None] | None = None) -> Selection:
    """Score every candidate (a failed render counts as +inf), keep the lowest total (the first
    one on ties), and record every report in the winner's ``meta["candidates"]``. ``seeds``: each
    candidate's seed, so that failed candidates keep theirs too."""
    reports = []
    for i, cand in enumerate(candidates):
        seed = seeds[i] if seeds is not None else None
        if isinstance(cand, BaseException):
            reports.append(CandidateTrace(i, seed, {}, math.inf, failed=str(cand) or type(cand).__name__))
            continue
        scores = {s.name: float(s(cand, script)) for s, _ in scorers}
        total = sum(w * (math.inf if math.isnan(scores[s.name]) else scores[s.name]) for s, w in scorers if w)
        reports.append(CandidateTrace(i, cand.meta.get("tts", {}).get("seed", seed), scores, float(total)))
    ok = [r for r in reports if r.failed is None and math.isfinite(r.total)] or [r for r in reports if r.failed is None]
    if not ok:
        return Selection(None, -1, reports)
    best = min(ok, key=lambda r: (r.total, r.index))
    reports = [replace(r, winner=True) if r is best else
               (r if r.failed else replace(r, lost=_why_lost(r, best))) for r in reports]
    chosen = candidates[best.index]
    assert isinstance(chosen, RenderedDialogue)
    selection = Selection(chosen, best.index, reports)
    chosen.meta["candidates"] = [r.to_dict() for r in reports]
    chosen.meta["candidate"] = best.index
    logger.debug("%s: kept candidate %d of %d (total %.4f)", chosen.id, best.index, len(candidates), best.total)
    return selection


def render_candidates_seeded(backend: Any, script: SpokenScript, main_speaker: str, voice_pair: Any,
                             rng: np.random.Generator, n: int) -> tuple[list[int], list[RenderedDialogue | BaseException]]:
    """``n`` renderings with seeds drawn from ``rng``, and those seeds: one batched call when the
    backend has ``render_dialogues`` (moshi_ms), else ``render_dialogue`` per seed."""
    if n < 1:
        raise JmoshiError(f"must be >= 1, got {n}", key="candidates.n")
    seeds = [int(s) for s in rng.integers(0, 2**63 - 1, size=n)]
    if hasattr(backend, "render_dialogues"):
        from jmoshi_augment.augment.speech.tts.base import DialogueRequest

        if voice_pair is None and hasattr(backend, "pick_voice_pair"):
            voice_pair = backend.pick_voice_pair(rng)  # one voice pair: candidates differ by seed only
        return seeds, list(backend.render_dialogues([DialogueRequest(script, main_speaker, voice_pair, s) for s in seeds]))
    out: list[RenderedDialogue | BaseException] = []
    for s in seeds:
        try:
            out.append(backend.render_dialogue(script, main_speaker, voice_pair, np.random.default_rng(s)))
        except RuntimeError as e:  # a candidate that fails is reported; the others still count
            out.append(e)
    return seeds, out


def render_candidates(backend: Any, script: SpokenScript, main_speaker: str, voice_pair: Any,
                      rng: np.random.Generator, n: int) -> list[RenderedDialogue | BaseException]:
    return render_candidates_seeded(backend, script, main_speaker, voice_pair, rng, n)[1]


def best_of_n(backend: Any, script: SpokenScript, main_speaker: str, voice_pair: Any, rng: np.random.Generator,
              n: int, scorers: Sequence[tuple[Scorer, float]]) -> Selection:
    seeds, candidates = render_candidates_seeded(backend, script, main_speaker, voice_pair, rng, n)
    return select_best(candidates, script, scorers, seeds)


def build_scorers(*, turn_taking: float = 1.0, cer: float = 1.0, asr_model: str | None = None,
                  device: str = "cpu", target: TurnTakingTarget | Mapping[str, float] | None = None
                  ) -> list[tuple[Scorer, float]]:
    """The built-in scorers with their weights, as a recipe's ``candidates`` section names them;
    CER only when ``asr_model`` is given."""
    if isinstance(target, Mapping):
        unknown = set(target) - set(TURN_TAKING_SCALES)
        if unknown:
            raise JmoshiError(f"unknown turn-taking target keys {sorted(unknown)}; known: {sorted(TURN_TAKING_SCALES)}",
                              key="candidates.target")
        target = TurnTakingTarget(**target)
    scorers: list[tuple[Scorer, float]] = []
    if turn_taking:
        scorers.append((TurnTakingScorer(target or TurnTakingTarget.human()), turn_taking))
    if asr_model is not None and cer:
        scorers.append((CerScorer.from_model_dir(asr_model, device=device), cer))
    if not scorers:
        raise JmoshiError("no scorer left: give turn_taking > 0, or asr_model with cer > 0", key="candidates")
    return scorers
