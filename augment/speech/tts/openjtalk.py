"""The default backend: OpenJTalk's front end and HTS engine (pyopenjtalk-plus), on the CPU, offline.

Word timings (pyopenjtalk reports none) come from three facts:
1. the front end says which characters of the text each OpenJTalk morpheme covers and which
   phonemes it became (``make_phoneme_mapping``), and those phonemes are, in order, the phonemes
   of the full-context labels the engine renders;
2. the engine's frame count per label is a pure function of the labels and the speaking rate,
   which :mod:`.htsvoice` re-computes exactly (checked against the rendered length);
3. OpenJTalk (IPAdic-style) morphemes and the script's UniDic words both tile the same text, so a
   word takes the phonemes of the morphemes inside it; a morpheme spanning several words is split
   between them at mora boundaries, in proportion to their morae.
The script decides every word's reading (augment/text/script.py). Where the front end would read
a stretch of words otherwise (今日 as コンニチ, ね〜 as ネカラ), that stretch is given to it as the
script's katakana reading instead (:func:`spoken_forms`); elsewhere the written form keeps
OpenJTalk's accent information. So a segment costs one or two front-end passes, one synthesis and
some label arithmetic. The test suite measures the resulting word starts against prefix
renderings by the engine itself.
"""

from __future__ import annotations

import difflib
import logging
import threading
from math import gcd
from typing import TYPE_CHECKING, Any, ClassVar, Iterable, Sequence

import numpy as np

from jmoshi_augment.augment.speech.tts.base import RenderMemo, peak_safe, unvoiced
from jmoshi_augment.augment.speech.tts.htsvoice import DurationModel, load_duration_model
from jmoshi_augment.augment.text.readings import aligned_stretches, load_pyopenjtalk  # noqa: F401  (tests import it from here too)
from jmoshi_augment.augment.types import SAMPLE_RATE, RenderedSegment, Segment, Word, WordTiming
from jmoshi_augment.augment.speech.tts.registry import SegmentOptions
from jmoshi_augment.errors import JmoshiError

if TYPE_CHECKING:
    from jmoshi_augment.recipe import VoiceConfig
from jmoshi_augment.augment.text.punctuation import PROSODIC

logger = logging.getLogger(__name__)

SILENT = frozenset({"sil", "pau"})  # label phonemes that are not speech
MORA_END = frozenset("aiueoAIUEO") | {"N", "cl"}  # a mora ends with a vowel, ん or っ
HTS_FULL_SCALE = 32768.0  # hts_engine renders 16-bit PCM values as floats
MEMO_MAX_WORDS = 2  # segments this short (a backchannel, a lone filler) are memoised
MEMO_SIZE = 512


def phoneme(label: str) -> str:
    """The current phoneme of a full-context label ``p1^p2-p3+p4=p5/A:...``."""
    return label.split("-", 1)[1].split("+", 1)[0]


# --------------------------------------------------------------------- labels → morphemes → words


def label_owners(phones: Sequence[str], morphemes: Sequence[Sequence[str]]) -> list[int]:
    """For each label phoneme, the index of the morpheme it came from (-1: silence or unknown).

    The mapping lists a ``pau`` for punctuation even where the engine makes none (sentence end)
    and ``unk`` for what it skipped; otherwise both sequences agree. A cheap in-order walk handles
    that; anything else falls back to a sequence alignment."""
    owners = [-1] * len(phones)
    i = 0
    for m, phs in enumerate(morphemes):
        for ph in phs:
            while i < len(phones) and phones[i] in SILENT and ph != phones[i]:
                i += 1  # a pause the mapping does not list
            if i < len(phones) and phones[i] == ph:
                if ph not in SILENT:
                    owners[i] = m
                i += 1
            elif ph in SILENT or ph == "unk":
                continue
            else:
                return _aligned_owners(phones, morphemes)
    if any(p not in SILENT for p in phones[i:]):
        return _aligned_owners(phones, morphemes)
    return owners


def _aligned_owners(phones: Sequence[str], morphemes: Sequence[Sequence[str]]) -> list[int]:
    flat = [(ph, m) for m, phs in enumerate(morphemes) for ph in phs if ph not in SILENT]
    owners = [-1] * len(phones)
    speech = [i for i, p in enumerate(phones) if p not in SILENT]
    sm = difflib.SequenceMatcher(None, [phones[i] for i in speech], [ph for ph, _ in flat], autojunk=False)
    for block in sm.get_matching_blocks():
        for k in range(block.size):
            owners[speech[block.a + k]] = flat[block.b + k][1]
    # unmatched speech phonemes join the morpheme before them (or after, at the start)
    last = next((owners[i] for i in speech if owners[i] >= 0), -1)
    for i in speech:
        if owners[i] < 0:
            owners[i] = last
        last = owners[i]
    logger.debug("phoneme mapping disagreed with the labels; aligned %d/%d", sum(b.size for b in sm.get_matching_blocks()), len(speech))
    return owners


def char_spans(words: Sequence[Word], texts: Sequence[str] | None = None) -> list[tuple[int, int]]:
    spans, pos = [], 0
    for t in texts if texts is not None else [w.surface for w in words]:
        spans.append((pos, pos + len(t)))
        pos += len(t)
    return spans


# ------------------------------------------------------------------------- the script's readings

_KANA_FOLD = str.maketrans({"ヲ": "オ", "ヅ": "ズ", "ヂ": "ジ"})


def _kana(text: str) -> str:
    return "".join(c for c in text if "ァ" <= c <= "ヺ" or c == "ー").translate(_KANA_FOLD)


def _phonemes(kana: str) -> list[str]:
    return [p.lower() for p in load_pyopenjtalk().g2p(kana).split() if p not in SILENT]


def spoken_forms(words: Sequence[Word], mapping: Sequence[dict[str, Any]]) -> list[str] | None:
    """Per word, the text to give the front end so it says the script's reading: the written
    form where OpenJTalk reads it that way (compared per stretch of words and morphemes that
    share their boundaries), the katakana reading where it does not. ``None``: all agree."""
    spans = char_spans(words)
    m_spans = morpheme_spans_of(mapping)
    forms = [w.surface for w in words]
    changed = False
    for ws, ms in aligned_stretches(spans, m_spans):
        morphs = [mapping[j] for j in ms]
        theirs = _kana("".join(str(m.get("pron", "")) for m in morphs))
        ours = _kana("".join(words[n].reading for n in ws))
        if theirs != ours:
            said = [p.lower() for m in morphs for p in m["phonemes"] if p not in SILENT and p != "unk"]
            if said != _phonemes(ours):
                for n in ws:
                    w = words[n]
                    forms[n] = w.reading + w.surface[len(w.surface.rstrip(PROSODIC)):]
                changed = True
    return forms if changed else None


def _morae(label_ids: list[int], phones: Sequence[str]) -> list[list[int]]:
    groups: list[list[int]] = [[]]
    for i in label_ids:
        groups[-1].append(i)
        if phones[i] in MORA_END:
            groups.append([])
    if not groups[-1]:
        groups.pop()
    elif len(groups) > 1:  # trailing consonants belong to the last mora
        groups[-2].extend(groups.pop())
    return groups


def _split_counts(weights: list[float], n: int) -> list[int]:
    """Split ``n`` morae over words in proportion to ``weights``; each weighted word gets at least
    one when there are enough."""
    total = sum(weights)
    if total <= 0:
        weights, total = [1.0] * len(weights), float(len(weights))
    cum = np.cumsum(weights) / total * n
    bounds, prev = [], 0
    live = [k for k, w in enumerate(weights) if w > 0]
    for k in range(len(weights)):
        b = int(round(cum[k]))
        if n >= len(live) and weights[k] > 0:
            later = sum(1 for j in live if j > k)
            b = min(max(b, prev + 1), n - later)
        b = min(max(b, prev), n)
        bounds.append(b)
        prev = b
    bounds[-1] = n
    return [b - a for a, b in zip([0] + bounds[:-1], bounds)]


def word_label_ranges(
    words: Sequence[Word],
    phones: Sequence[str],
    owners: Sequence[int],
    morpheme_spans: Sequence[tuple[int, int]],
    texts: Sequence[str] | None = None,
) -> list[tuple[int, int] | None]:
    """Per word, the first and last label index it owns (``None``: nothing voiced); ``texts``:
    the words as given to the front end when that is not their surfaces."""
    spans = char_spans(words, texts)
    by_morpheme: dict[int, list[int]] = {}
    for i, m in enumerate(owners):
        if m >= 0 and phones[i] not in SILENT:
            by_morpheme.setdefault(m, []).append(i)
    assigned: list[list[int]] = [[] for _ in words]
    for m, label_ids in by_morpheme.items():
        a, b = morpheme_spans[m]
        hits = [k for k, (s, e) in enumerate(spans) if s < b and a < e]
        if not hits:  # an unplaced morpheme: give it to the word where the previous one went
            hits = [max((k for k, (s, _) in enumerate(spans) if s <= a), default=0)]
        if len(hits) == 1:
            assigned[hits[0]].extend(label_ids)
            continue
        groups = _morae(label_ids, phones)
        weights = []
        for k in hits:
            s, e = spans[k]
            overlap = min(b, e) - max(a, s)
            weights.append(overlap / (e - s) * (words[k].morae or 1))
        start = 0
        for k, count in zip(hits, _split_counts(weights, len(groups))):
            for g in groups[start : start + count]:
                assigned[k].extend(g)
            start += count
    return [(min(ids), max(ids)) if ids else None for ids in assigned]


def morpheme_spans_of(mapping: Sequence[dict[str, Any]]) -> list[tuple[int, int]]:
    """Character spans of the mapping's morphemes; an empty span (the front end could not place
    the morpheme, e.g. the 十 it inserts when reading 2024) takes its predecessor's."""
    spans: list[tuple[int, int]] = []
    for entry in mapping:
        a, b = entry["char_span"]
        if b <= a:
            a, b = spans[-1] if spans else (0, 0)
        spans.append((a, b))
    if spans and spans[0] == (0, 0):
        first = next((s for s in spans if s != (0, 0)), (0, 0))
        spans = [first if s == (0, 0) else s for s in spans]
    return spans


# ----------------------------------------------------------------------------------- the backend


class OpenJTalkOptions(SegmentOptions):
    """``tts.options`` of the openjtalk backend (voice files are the voices' ``htsvoice``)."""

    bundled_voice: ClassVar[str | None] = "bundled mei_normal.htsvoice"

    def check_files(self, voices: Sequence["VoiceConfig"]) -> Iterable[JmoshiError]:
        """Each voice's HTS voice file parses (its duration model is what the word timings need)."""
        yield from super().check_files(voices)
        for i, voice in enumerate(voices):
            if voice.htsvoice is None:
                continue
            try:
                load_duration_model(voice.htsvoice)
            except JmoshiError as e:
                yield JmoshiError(e.message, path=e.path, key=f"tts.voices.{i}.htsvoice")


class OpenJTalkBackend:
    """``openjtalk``: the bundled mei_normal voice (or any ``.htsvoice``) at a voice's speed and
    pitch (:class:`OpenJTalkOptions`)."""

    name = "openjtalk"
    styles: tuple[str, ...] = ()  # one HTS voice per file: no styles to blend
    style_pitch: dict[str, float] = {}

    def __init__(self, options: OpenJTalkOptions = OpenJTalkOptions()) -> None:
        self.margin = options.margin
        self._engines: dict[str, Any] = {}
        self._lock = threading.Lock()  # an engine's speed/pitch settings hold until its next synthesis
        # Backchannel and fillers repeat endlessly (うん, はい, えー): rendering is deterministic, so a
        # small memo of short segments per voice saves their synthesis without changing a sample.
        self._memo = RenderMemo(MEMO_SIZE)

    def _voice(self, voice: VoiceConfig) -> tuple[Any, DurationModel]:
        pyopenjtalk = load_pyopenjtalk()
        path = voice.htsvoice or pyopenjtalk.DEFAULT_HTS_VOICE.decode("utf-8")
        model = load_duration_model(str(path))  # clear errors for a missing or broken file
        if path not in self._engines:
            try:
                self._engines[path] = pyopenjtalk.HTSEngine(str(path).encode("utf-8"))
            except RuntimeError as e:
                raise JmoshiError(f"hts_engine cannot load this voice: {e}", path=path, key=f"tts.voices.{voice.name}") from None
        engine = self._engines[path]
        if engine.get_sampling_frequency() != model.sampling_frequency or engine.get_fperiod() != model.frame_period:
            raise JmoshiError("voice header disagrees with hts_engine (sampling rate / frame period)", path=path)
        return engine, model

    def render(self, segments: Sequence[Segment], voice: VoiceConfig) -> list[RenderedSegment]:
        engine, model = self._voice(voice)
        return [self._render_memo(seg, voice, engine, model) for seg in segments]

    def _render_memo(self, seg: Segment, voice: VoiceConfig, engine: Any, model: DurationModel) -> RenderedSegment:
        if len(seg.words) > MEMO_MAX_WORDS:
            return self._render_one(seg, voice, engine, model)
        return self._memo.get((seg.words, voice), lambda: self._render_one(seg, voice, engine, model))

    def _render_one(self, seg: Segment, voice: VoiceConfig, engine: Any, model: DurationModel) -> RenderedSegment:
        pyopenjtalk = load_pyopenjtalk()
        text = seg.text
        if not seg.words or not text.strip():
            return unvoiced(seg, "segment has no words")
        forms: list[str] | None = None
        for _ in range(2):  # a second pass when some words must be said from their readings
            njd, morphs = pyopenjtalk.run_frontend_detailed(text)
            labels = pyopenjtalk.make_label(njd)
            phones = [phoneme(label) for label in labels]
            try:
                mapping = pyopenjtalk.make_phoneme_mapping(njd, morphs, caller_text=text)
            except (ValueError, RuntimeError) as e:
                logger.debug("no phoneme mapping for %r (%s); splitting by morae", text[:40], e)
                mapping = None
            if forms is not None or mapping is None:
                break
            forms = spoken_forms(seg.words, mapping)
            if forms is None:
                break
            text = "".join(forms)
        if not any(p not in SILENT for p in phones):
            return unvoiced(seg, "OpenJTalk finds nothing to voice (symbols only)")
        if mapping is not None:
            morphemes = [list(e["phonemes"]) for e in mapping]
            spans = morpheme_spans_of(mapping)
        else:  # no character spans: treat the sentence as one morpheme split by morae
            morphemes = [[p for p in phones if p not in SILENT]]
            spans = [(0, len(text))]
        owners = label_owners(phones, morphemes)
        ranges = word_label_ranges(seg.words, phones, owners, spans, forms)

        with self._lock:
            engine.set_speed(voice.speed)
            engine.add_half_tone(voice.half_tone)
            wave = engine.synthesize(labels)
        sr = model.sampling_frequency
        bounds = model.phone_samples(labels, voice.speed)  # [num_labels, 2] in samples at sr
        if int(bounds[-1, 1]) != len(wave):  # the duration model must reproduce the engine exactly
            raise JmoshiError(f"word timings unavailable: the voice's duration model predicts {bounds[-1, 1]} "
                              f"samples but hts_engine made {len(wave)} (unsupported voice?)", path=voice.htsvoice)

        speech = [i for i, p in enumerate(phones) if p not in SILENT]
        first, last = bounds[speech[0], 0] / sr, bounds[speech[-1], 1] / sr
        g = gcd(sr, SAMPLE_RATE)
        from scipy.signal import resample_poly  # 1 s to import: only when a segment is rendered

        audio = resample_poly(wave / HTS_FULL_SCALE, SAMPLE_RATE // g, sr // g) if sr != SAMPLE_RATE else wave / HTS_FULL_SCALE
        a = max(int(round((first - self.margin) * SAMPLE_RATE)), 0)
        b = min(int(round((last + self.margin) * SAMPLE_RATE)), len(audio))
        offset = a / SAMPLE_RATE

        timings: list[WordTiming] = []
        cursor = float(max(first - offset, 0.0))  # unvoiced words sit where the previous word ended
        for w, r in zip(seg.words, ranges):
            if r is None:
                timings.append(WordTiming(w.surface, cursor, cursor))
                continue
            start = float(bounds[r[0], 0] / sr - offset)
            end = float(bounds[r[1], 1] / sr - offset)
            timings.append(WordTiming(w.surface, start, end))
            cursor = end
        return RenderedSegment(audio=peak_safe(audio[a:b]), words=tuple(timings))


__all__ = ["OpenJTalkBackend", "label_owners", "phoneme", "word_label_ranges"]
