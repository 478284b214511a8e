"""Text dialogue → spoken script: normalised sentences of UniDic words, with fillers and the
listener's aizuchi placed at points of the partner's speech that invite them.

Everything here is a pure function of (dialogue, options, random generator); the only heavy
resources are the fugashi tagger and pyopenjtalk's reading front end, created once per process.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from jmoshi_augment.augment.types import Segment, SpokenScript, Word
from jmoshi_augment.corpora.dialogue import Dialogue
from jmoshi_augment.recipe import ScriptConfig

# ---------------------------------------------------------------------------------- normalising

# Privacy masks of RealPersonaChat (<XX>さん, ＊＊, ○○) must not be read out as symbols: Japanese
# broadcast convention reads an elided name as まるまる.
_MASK = re.compile(r"<[A-Za-zＡ-Ｚ]{1,4}>|[＊*]{2,}|[○〇◯]{2,}|[×✕]{2,}")
# Emoji, pictographs, dingbats and kaomoji-ish bracketed symbol runs carry no speech.
_EMOJI = re.compile(
    "[\U0001F000-\U0001FAFF\U00002600-\U000027BF\U0001F900-\U0001F9FF\U00002B00-\U00002BFF"
    "\U0000FE0F\U0000200D\U000020E3\U00002190-\U000021FF]"
)
_KAOMOJI = re.compile(r"[(（][^()（）ぁ-んァ-ン一-龥a-zA-Z0-9]{1,12}[)）]")
_LAUGH = re.compile(r"(?<![A-Za-z])[wｗ]{2,}(?![A-Za-z])|[(（]笑[)）]|草{2,}")
_TIME = re.compile(r"(\d{1,2}):(\d{2})")
_DATE = re.compile(r"(\d{4})[/.-](\d{1,2})[/.-](\d{1,2})")
_MONTH_DAY = re.compile(r"(?<![\d/])(\d{1,2})/(\d{1,2})(?![\d/])")
_SYMBOL_WORDS = {"%": "パーセント", "&": "アンド", "+": "プラス", "=": "イコール", "~": "から", "〜": "から", "#": "シャープ"}
_SENTENCE_END = re.compile(r"(?<=[。！？!?…])|\n+")
_REPEATED_MARKS = re.compile(r"([！？!?。、…ー〜])\1+")
SPEECH_CHARS = re.compile(r"[ぁ-ゖァ-ヺ一-鿿々〆ヵヶA-Za-z0-9]")


def normalize_text(text: str) -> str:
    """Written chat text → text a TTS front end reads correctly (NFKC, masks, emoji, times)."""
    text = _MASK.sub("まるまる", text)
    text = _LAUGH.sub("", text)
    # In chat, an emoji or kaomoji usually ends a sentence: keep that boundary, drop the symbol.
    text = _EMOJI.sub("\n", text)
    text = _KAOMOJI.sub("\n", text)
    text = unicodedata.normalize("NFKC", text)  # full-width ASCII → ASCII, half-width kana → full
    text = _DATE.sub(lambda m: f"{m[1]}年{int(m[2])}月{int(m[3])}日", text)
    text = _TIME.sub(lambda m: f"{int(m[1])}時" + ("半" if m[2] == "30" else "" if m[2] == "00" else f"{int(m[2])}分"), text)
    text = _MONTH_DAY.sub(lambda m: f"{int(m[1])}月{int(m[2])}日", text)
    for sym, word in _SYMBOL_WORDS.items():
        text = text.replace(sym, word)
    # ASCII punctuation back to Japanese forms so sentence splitting and OpenJTalk pauses work.
    text = text.replace(",", "、").replace("!", "！").replace("?", "？").replace("...", "…")
    text = _REPEATED_MARKS.sub(r"\1", text)
    text = re.sub(r"[\"'“”‘’「」『』【】\[\]{}<>《》〈〉*_^|\\/@;:]", " ", text)
    text = re.sub(r"[ \t\u3000]+", " ", text)
    # A space between Japanese characters separates sentences in chat style (すごいね また今度).
    text = re.sub(r"(?<=[^\x00-\x7f]) (?=[^\x00-\x7f])", "\n", text)
    return re.sub(r" *\n[\n ]*", "\n", text).strip()


def split_sentences(text: str, max_chars: int) -> list[str]:
    """Sentences at 。！？… and line breaks; an over-long sentence is split at 、 (or hard-wrapped)."""
    out: list[str] = []
    for sentence in _SENTENCE_END.split(text):
        sentence = sentence.strip(" 、")
        if not sentence:
            continue
        while len(sentence) > max_chars:
            cut = sentence.rfind("、", 0, max_chars)
            cut = cut + 1 if cut > max_chars // 3 else max_chars
            out.append(sentence[:cut].strip(" 、"))
            sentence = sentence[cut:].strip(" 、")
        if sentence:
            out.append(sentence)
    return [s for s in out if SPEECH_CHARS.search(s)]


# --------------------------------------------------------------------------------------- words

_SMALL_KANA = set("ァィゥェォャュョヮぁぃぅぇぉゃゅょゎ")


def count_morae(kana: str) -> int:
    """Morae of a katakana reading: every kana except the small glide kana (ッ and ー count)."""
    return sum(1 for c in kana if ("ァ" <= c <= "ヺ" or c == "ー") and c not in _SMALL_KANA)


@lru_cache(maxsize=1)
def _tagger():
    import fugashi  # unidic-lite dictionary, bundled

    return fugashi.Tagger()


@lru_cache(maxsize=4096)
def _openjtalk_reading(surface: str) -> str:
    """Readings UniDic lacks (numbers, Latin words) from OpenJTalk's own front end."""
    from jmoshi_augment.augment.speech.tts.openjtalk import load_pyopenjtalk

    return load_pyopenjtalk().g2p(surface, kana=True)


def to_words(sentence: str) -> tuple[Word, ...]:
    """UniDic short units with readings; punctuation is glued to the preceding word so every word
    is voiced and carries its pause cue into the TTS text."""
    words: list[Word] = []
    for token in _tagger()(sentence):
        f = token.feature
        pos = f"{f.pos1}-{f.pos2}" if f.pos2 not in (None, "*", "") else str(f.pos1)
        if f.pos1 in ("補助記号", "空白"):
            if words and token.surface in "、。！？…ー〜":
                last = words[-1]
                words[-1] = Word(last.surface + token.surface, last.reading, last.morae, last.pos)
            continue
        reading = f.pron if f.pron not in (None, "*") else _openjtalk_reading(token.surface)
        morae = count_morae(reading)
        if morae == 0:  # a symbol OpenJTalk cannot voice either
            continue
        words.append(Word(token.surface, reading, morae, pos))
    return tuple(words)


def make_word(text: str) -> Word:
    """A single inserted word (filler or aizuchi) as one unit."""
    reading = "".join(w.reading for w in to_words(text))
    return Word(text, reading, count_morae(reading), "感動詞")


# ---------------------------------------------------------------------------------- the script


@dataclass(frozen=True)
class _Turn:
    speaker: str
    sentences: tuple[tuple[Word, ...], ...]


def _is_polite(sentences: tuple[tuple[Word, ...], ...]) -> bool:
    return any(w.surface.rstrip("、。！？…").startswith(("です", "ます", "でし", "まし")) for s in sentences for w in s)


def _pick(rng: np.random.Generator, weighted: dict[str, float]) -> str:
    forms = list(weighted)
    p = np.asarray([weighted[f] for f in forms], dtype=float)
    return forms[int(rng.choice(len(forms), p=p / p.sum()))]


def backchannel_anchors(sentences: tuple[tuple[Word, ...], ...]) -> list[tuple[int, int]]:
    """Points inside a turn that invite aizuchi: clause ends (connective particles, て-forms),
    sentence-final particles (ね, よ, ...) and sentence ends — only where the speaker goes on
    afterwards (the turn's final word is a transition place, not a backchannel place)."""
    anchors: list[tuple[int, int]] = []
    for si, words in enumerate(sentences):
        for wi, w in enumerate(words):
            is_last_of_turn = si == len(sentences) - 1 and wi == len(words) - 1
            if is_last_of_turn:
                continue
            clause_end = w.pos in ("助詞-接続助詞", "助詞-終助詞") or w.surface.endswith("、")
            if wi == len(words) - 1 or (clause_end and wi >= 2):
                anchors.append((si, wi))
    return anchors


def make_script(dialogue: Dialogue, cfg: ScriptConfig, rng: np.random.Generator) -> SpokenScript:
    """Normalise and segment every turn, add fillers and the listener's backchannels."""
    skipped: list[str] = []
    turns: list[_Turn] = []
    for turn in dialogue.turns:
        text = normalize_text(turn.text)
        if len(text) > cfg.max_turn_chars:
            cut = max(text.rfind(m, 0, cfg.max_turn_chars) for m in "。！？")
            text = text[: cut + 1] if cut > 0 else text[: cfg.max_turn_chars]
            skipped.append("turn cut at max_turn_chars")
        sentences = tuple(ws for ws in (to_words(s) for s in split_sentences(text, cfg.max_sentence_chars)) if ws)
        if not sentences:
            skipped.append("turn empty after normalisation")
            continue
        if turns and turns[-1].speaker == turn.speaker:  # two turns in a row: one longer turn
            turns[-1] = _Turn(turn.speaker, turns[-1].sentences + sentences)
        else:
            turns.append(_Turn(turn.speaker, sentences))

    speech: list[Segment] = []
    for ti, turn in enumerate(turns):
        for si, words in enumerate(turn.sentences):
            # never stack a filler on an opening interjection (あ、 / うん、 / えっと)
            opens_with_interjection = words[0].pos.startswith("感動詞")
            if cfg.fillers and rng.random() < cfg.filler_rate and not opens_with_interjection:
                filler = make_word(_pick(rng, cfg.fillers))
                words = (Word(filler.surface + "、", filler.reading, filler.morae, "フィラー"),) + words
            speech.append(Segment(turn.speaker, words, "speech", ti, si))

    # Anchors are computed on the segments as spoken (fillers included), so word indices match
    # the rendered word timings the planner will read.
    by_turn: dict[int, list[Segment]] = {}
    for seg in speech:
        by_turn.setdefault(seg.turn, []).append(seg)
    backchannels: list[Segment] = []
    speakers = tuple(dict.fromkeys(t.speaker for t in turns))
    for ti, segs in by_turn.items():
        listener = next((s for s in speakers if s != turns[ti].speaker), None)
        if listener is None:
            continue
        own = [t.sentences for t in turns if t.speaker == listener]
        forms = cfg.backchannels_polite if any(_is_polite(s) for s in own) else cfg.backchannels_casual
        for anchor in backchannel_anchors(tuple(s.words for s in segs)):
            if rng.random() < cfg.backchannel_rate:
                bc = make_word(_pick(rng, forms))
                backchannels.append(Segment(listener, (bc,), "backchannel", ti, anchor=anchor))

    return SpokenScript(
        dialogue_id=dialogue.id,
        corpus=dialogue.corpus,
        speakers=speakers,
        segments=tuple(speech + backchannels),
        skipped=tuple(skipped),
        source_text=tuple((t.speaker, t.text) for t in dialogue.turns),
    )
