"""The sections of a recipe, one pydantic model each, with every default a modelling choice that
cites its source. :mod:`jmoshi_augment.recipe` assembles them into a :class:`Recipe` and reads
YAML; import the names from there.
"""

from __future__ import annotations

from typing import Literal, Optional

from pydantic import BaseModel, ConfigDict, Field, model_validator

from jmoshi_augment.constants import TEXT_IDS
from jmoshi_augment.recipe_pauses import HoldScriptKeys, HoldTimingKeys, check_min_median_max


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


# --------------------------------------------------------------------------------------- corpus
class CorpusFilters(_Section):
    min_turns: int = Field(2, ge=1, description="Drop dialogues with fewer turns.")
    max_turns: Optional[int] = Field(None, ge=1, description="Keep only the first N turns.")
    ids: Optional[list[str]] = Field(None, description="Keep only these dialogue ids.")


class CorpusConfig(_Section):
    name: str = Field(..., description="Corpus loader name (`jmoshi-augment corpora list`).")
    path: str = Field(..., description="Corpus file/folder as published, or builtin:sample.")
    limit: Optional[int] = Field(None, ge=1, description="Stop after N dialogues.")
    filters: CorpusFilters = CorpusFilters()


# -------------------------------------------------------------------------------------- rewrite
class RewriteConfig(_Section):
    """Optional LLM spoken-style rewrite (augment/text/rewrite/). J-Moshi-ext rewrote its text corpora
    with an LLM into casual speech; one of its outputs holds a Korean clause, hence the checks."""

    backend: Literal["none", "llm"] = Field("none", description="none: keep the corpus text; llm: rewrite it.")
    # Any OpenAI-compatible chat-completions endpoint; vLLM's `vllm serve` listens here by default.
    base_url: str = Field("http://127.0.0.1:8000/v1", description="Chat-completions base URL (vLLM, llama.cpp, Ollama, hosted).")
    model: Optional[str] = Field(None, description="Model name as the server knows it (required for backend llm).")
    api_key_env: Optional[str] = Field(None, description="Environment variable holding the API key; none: local server, no key.")
    prompt_file: Optional[str] = Field(None, description="System prompt file; default: the bundled prompts/rewrite_ja.txt.")
    response_format: Literal["json_object", "json_schema", "none"] = Field(
        "json_object", description="Structured-output mode sent to the server (json_schema: enforce turns/speakers)."
    )
    temperature: float = Field(0.7, ge=0, le=2, description="Sampling temperature.")
    max_tokens: Optional[int] = Field(None, ge=16, description="Completion token limit; none: the server's default.")
    max_retries: int = Field(2, ge=0, le=10, description="Re-asks after a rejected rewrite (reason in the prompt); then keep the original.")
    concurrency: int = Field(8, ge=1, le=512, description="Requests in flight at once.")
    timeout: float = Field(120.0, gt=0, description="Seconds per request before it counts as a timeout.")
    http_retries: int = Field(5, ge=0, le=20, description="Retries of one request after 429, 5xx or a timeout.")
    backoff_base: float = Field(1.0, gt=0, description="First backoff delay, s; doubles per retry (a Retry-After header wins).")
    backoff_max: float = Field(60.0, gt=0, description="Longest backoff delay, s.")
    # Spoken style adds fillers and short backchannel turns (J-Moshi-ext's 1-0002 grew from 6 to 12
    # turns), so the rewrite is usually longer; much shorter means content was dropped.
    min_length_ratio: float = Field(0.6, gt=0, description="Rewritten/original characters, lower bound.")
    max_length_ratio: float = Field(2.5, gt=0, description="Rewritten/original characters, upper bound.")
    max_latin_run: int = Field(16, ge=1, description="Longest Latin-letter run not in the original (names like YouTube pass).")
    # Acronyms and names (SNS, YouTube) are a small part of a Japanese turn; an English answer
    # ("Yes, sure, okay.") is all of it. Half is the line between the two (issue 19); up to 3
    # letters (OK, PC) always pass.
    max_latin_share: float = Field(
        0.5, gt=0, le=1, description="Largest share of a turn's letters that may be Latin letters not in the original."
    )
    cache_dir: Optional[str] = Field(None, description="Answer cache shared across runs; default: <output.dir>/cache/rewrite.")

    @model_validator(mode="after")
    def _check(self) -> "RewriteConfig":
        if self.backend == "llm" and not self.model:
            raise ValueError("rewrite.model is required when rewrite.backend is llm")
        if self.min_length_ratio >= self.max_length_ratio:
            raise ValueError("rewrite.min_length_ratio must be below rewrite.max_length_ratio")
        return self


# --------------------------------------------------------------------------------------- script
class ScriptConfig(_Section, HoldScriptKeys):  # hold_* and mid_filler* keys: recipe_pauses.py
    # Fillers: 40-65 % of sentences in free dialogue hold one (Murakami et al. 1995); エー, アノー,
    # マー are the most frequent (Watanabe & Shirahata 2019, CSJ). We add fewer, since the corpus
    # text is already conversational and the TTS renders fillers less naturally than people.
    filler_rate: float = Field(0.25, ge=0, le=1, description="Probability that a sentence opens with a filler.")
    fillers: dict[str, float] = Field(
        {"えー": 3, "えっと": 2, "あの": 2, "まあ": 2, "うーん": 1},
        description="Sentence-initial fillers and their relative weights (その never opens a sentence).",
    )
    # Backchannels: Japanese listeners give backchannels far more often than Americans (Maynard 1986,
    # White 1989), at clause ends and after sentence-final particles such as ね. The rate is per
    # eligible point inside the partner's turn (see text/backchannel.py, backchannel_anchors). About half
    # of them are said in the partner's pause as short turns (timing.backchannel_in_pause_prob), the
    # rest inside the partner's speech; the default is calibrated with the kokoro voices so the
    # latter land near the human 6.7 within overlaps per minute measured on J-Moshi's resynthesised
    # dialogues (docs/turn-taking.md, bench/RESULTS.md). うん dominates casual talk, はい/ええ polite talk.
    backchannel_rate: float = Field(0.8, ge=0, le=1, description="Probability of a backchannel at an eligible point.")
    backchannels_casual: dict[str, float] = Field(
        {"うん": 6, "うんうん": 2, "へー": 2, "そうなんだ": 1, "なるほど": 1, "ああ": 1, "ほんと": 1, "そっか": 1},
        description="Backchannel forms (weights) for a listener who speaks casually.",
    )
    backchannels_polite: dict[str, float] = Field(
        {"はい": 5, "ええ": 2, "そうですね": 2, "はいはい": 1, "へー": 1, "なるほど": 1, "そうなんですね": 1},
        description="Backchannel forms (weights) for a listener who uses です/ます.",
    )
    # Varied forms: the form a listener just used is drawn with its weight times this for the next
    # backchannel. Listeners vary their tokens across a conversation (Maynard 1986 lists several forms
    # in every conversation); 0.35 keeps うん the most common casual form while a run of identical
    # はい becomes unlikely.
    backchannel_repeat_weight: float = Field(0.35, gt=0, le=1, description="Weight factor of the form just used.")
    # Register: Japanese speakers shift between です/ます and plain forms inside one conversation
    # (Maynard 1991; Cook 2008), so a speaker counts as polite when a third of their sentence ends
    # are です/ます, not only when all are; casual friends rarely reach that share.
    polite_share: float = Field(0.34, gt=0, le=1, description="Share of polite sentence ends that makes a speaker polite.")
    # Backchannel come at phrase ends, not in the first words of a sentence (Maynard 1986: at
    # grammatical completion points); a clause end counts after at least this many words.
    anchor_min_words: int = Field(3, ge=1, description="Words a sentence must have before a clause end can take a backchannel.")
    max_sentence_chars: int = Field(80, ge=10, description="Longer sentences are split at a comma or word boundary.")
    max_turn_chars: int = Field(600, ge=20, description="Longer turns are cut at a sentence end (counted as a skip reason).")


# --------------------------------------------------------------------------------------- timing
class TimingConfig(_Section, HoldTimingKeys):  # hold_pause_*, lapse_* and edge_fade: recipe_pauses.py
    """The turn-taking planner's distributions (augment/speech/timing.py). Targets are measured by
    `jmoshi-augment stats` with the dGSLM definitions (Nguyen et al. 2023): IPUs bridge silences
    < 200 ms; an overlap is *within* when the shorter IPU lies entirely inside the other's and
    lasts < 1 s. The human reference is J-Moshi's five resynthesised human dialogues measured by the
    same code (docs/turn-taking.md; our runs in bench/RESULTS.md, "Turn-taking"): 45.8 IPUs/min, 10.4 pauses/min, 6.7 within
    overlaps/min, 39 % of speaker changes overlapped, gap median 0.30 s."""

    # --- speaker changes. Japanese speaker changes centre on 0 ms (Stivers et al. 2009: +7 ms for
    # answers to yes/no questions; Dingemanse & Liesenfeld 2022: CallFriend Japanese peaks just
    # above 0); about 40 % of speaker changes are overlaps in European corpora (Heldner & Edlund
    # 2010) and 39 % in the human reference. The issue-17 target for the share is 25-35 %.
    overlap_prob: float = Field(0.32, ge=0, le=1, description="Share of speaker changes that overlap.")
    overlap_median: float = Field(0.25, gt=0, description="Median overlap at a speaker change, s (log-normal).")
    overlap_max: float = Field(0.8, gt=0, description="Never overlap more than this, s.")
    # An overlap is a next speaker coming in near a turn's end, not talking over all of a short one.
    overlap_max_share: float = Field(0.4, gt=0, le=1, description="Never overlap more than this share of the previous sentence.")
    # Switching pauses cluster near 0 s and 0.6 s (Nagaoka et al. 2000); a two-component log-normal
    # mixture reproduces both modes. Measured gap median target 0.30-0.50 s (human reference 0.30 s);
    # the short-mode median and the long-mode share are calibrated so that `stats` measures that on
    # the sample and the corpus fixtures with the kokoro voices (0.2 s and 40 % measured 0.265 s on
    # the sample, 0.25 s and 50 % 0.29-0.30 s on the fixtures; bench/RESULTS.md, "Turn-taking").
    gap_short_median: float = Field(0.25, gt=0, description="Median of the short gap mode, s.")
    gap_long_median: float = Field(0.6, gt=0, description="Median of the long gap mode, s.")
    gap_long_prob: float = Field(0.6, ge=0, le=1, description="Share of gaps drawn from the long mode.")
    gap_sigma: float = Field(0.35, gt=0, description="Log-normal sigma of gaps, overlaps and backchannel delays.")
    # One 10 ms analysis frame: a gap shorter than this is no gap to the detector.
    min_gap: float = Field(0.02, ge=0, description="Shortest gap at a speaker change, s.")
    interruption_prob: float = Field(0.05, ge=0, le=1, description="Share of speaker changes that cut in early.")
    # An interruption (cut-in) starts 0.6-1.2 s before the turn end, deeper than the usual overlap
    # (overlap_median), yet after the previous speaker has said most of the sentence.
    interruption_min: float = Field(0.6, gt=0, description="Shallowest interruption before the turn end, s.")
    interruption_max: float = Field(1.2, gt=0, description="How far before the turn end an interruption may start, s.")
    interruption_max_share: float = Field(0.6, gt=0, le=1, description="Never cut in before this share of the previous sentence is said.")

    # --- pauses inside a turn. Pause units in Japanese dialogue average 5.89 morphemes, about 60 %
    # of an utterance (Seligman et al. 1997), so speakers run many clauses and even sentences
    # together; pauses cluster after openers (エー, アノ: fillers sit at boundaries and after
    # longer silences, Watanabe & Shirahata 2019; Watanabe et al. 2021) and at sentence ends, and
    # Japanese hold pauses are long and widely spread (Inoue et al. 2024). The probabilities are
    # calibrated so the sample run measures at most the human 10.4 pauses/min (issue 17: <= 11).
    # The chance of a pause at a sentence or clause junction grows with the morae spoken since the
    # last pause, reaching the junction's probability after this many (about 2.5 s at 8 morae/s,
    # CEJC): a person pauses for breath and planning, not at every comma.
    pause_unit_morae: float = Field(20.0, gt=0, description="Morae since the last pause at which a junction's pause chance is full.")
    pause_prob_sentence: float = Field(0.9, ge=0, le=1, description="P(pause) between two sentences of one turn.")
    pause_prob_filler: float = Field(0.5, ge=0, le=1, description="P(pause) after an opening filler or interjection (えー、).")
    pause_prob_clause: float = Field(0.45, ge=0, le=1, description="P(pause) at a clause comma where the TTS left silence.")
    # Human reference pause median 0.34 s; a pause must exceed the 200 ms IPU threshold by a margin
    # for the detector's onset/offset rounding (one 10 ms frame each side, plus soft edges).
    pause_median: float = Field(0.4, gt=0, description="Median pause inside a turn, s (log-normal).")
    pause_sigma: float = Field(0.35, gt=0, description="Log-normal sigma of pauses.")
    pause_min: float = Field(0.25, gt=0, description="Shortest pause, s (above the 200 ms IPU threshold).")
    pause_max: float = Field(1.2, gt=0, description="Longest pause, s (Jefferson's ~1 s standard maximum, plus slack).")
    # A join keeps one IPU: silence < 200 ms between speech (dGSLM), with room for soft edges.
    join_silence_min: float = Field(0.03, ge=0, description="Shortest silence at a join (no pause), s.")
    join_silence_max: float = Field(0.12, ge=0, description="Longest silence at a join, s (< the 200 ms IPU threshold).")
    # OpenJTalk leaves 140-370 ms at every 、 (measured on the sample); word boundaries with at least
    # this much silence are re-timed by the planner, shorter ones are kept as rendered.
    splice_min: float = Field(0.08, gt=0, description="TTS silence (s) from which a word boundary is re-timed.")

    # --- backchannel. Japanese listeners place them inside the partner's turn at phrase/clause ends and
    # after ね (Maynard 1986, 1990); one >= 350 ms after the partner's phrase end signals
    # non-understanding (羅希 2016), so onsets come well before. dGSLM counts a backchannel as
    # backchannel-like only when it lies entirely inside the partner's IPU and lasts < 1 s.
    backchannel_delay_median: float = Field(0.12, gt=0, description="Median onset after the anchor word's end, s.")
    backchannel_delay_min: float = Field(0.03, ge=0, description="Earliest onset after the anchor word's end, s.")
    backchannel_delay_max: float = Field(0.3, gt=0, description="Latest onset after the anchor word's end, s.")
    backchannel_margin: float = Field(0.05, ge=0, description="End this long before the partner's next phrase boundary, s.")
    backchannel_max: float = Field(0.95, gt=0, description="Longest backchannel speech, s (dGSLM within: < 1 s).")
    # A listener does not backchannel right before or after their own turn.
    backchannel_clearance: float = Field(0.15, ge=0, description="Keep a backchannel this far from the listener's own speech, s.")
    # Japanese listeners also answer in the speaker's pause between pause-bounded phrases or
    # sentences (Maynard 1986, 1990: backchannels come at and after grammatical completion points and
    # final particles, many in the pauses between the speaker's phrasal units), as a short turn
    # after which the speaker goes on; Clancy et al. 1996 count such reactive tokens as non-floor-
    # taking turns. The rest stay inside the partner's speech. Each one turns a pause (or a join)
    # into gap + backchannel + gap: two speaker changes and one more IPU, the lever for the speaker
    # changes written text lacks (11-19/min against the human 25, bench/RESULTS.md). Only at a
    # sentence end (a completion point) and at a hold the script planned: at a clause comma the
    # backchannel stays inside the speech, since a gap there would follow an unfinished clause
    # (issue 26: at least 80 % of the gaps follow a sentence end). The share is calibrated so the
    # sample meets the issue-17 IPU target (40-55/min) with the kokoro voices.
    backchannel_in_pause_prob: float = Field(0.5, ge=0, le=1, description="Share of the backchannels anchored at a sentence end said in a pause of the partner.")
    # Its onset after the partner stops: quick, since one >= 350 ms after the phrase end signals
    # non-understanding (羅希 2016). The gap is planned from the partner's last word timing, which
    # ends ~50 ms after the energy VAD's offset (these gaps measured 0.25-0.30 s when planned at
    # 0.30-0.34 s on the jdaily fixture), so a planned 0.40 s is heard as about 0.35 s.
    backchannel_pause_onset_median: float = Field(0.35, gt=0, description="Median gap from the partner's stop to an in-pause backchannel, s.")
    backchannel_pause_onset_min: float = Field(0.1, ge=0, description="Shortest gap around an in-pause backchannel, s.")
    backchannel_pause_onset_max: float = Field(0.4, gt=0, description="Longest planned gap before an in-pause backchannel, s (heard < 350 ms).")

    # The speaker goes on after it: a backchannel is a continuer that passes up the turn (Schegloff
    # 1982), so the speaker, who kept the floor, needs only hear it come and often goes on over its
    # tail; otherwise after a gap drawn like any speaker change's (the gap mixture above). dGSLM
    # counts that gap as a speaker change whose silence follows no sentence end: this share is
    # calibrated so that at least 80 % of the gaps follow one (issue 26) with the kokoro voices
    # (0.7 measured 86-91 % on the sample and three fixtures, 78 % on jdaily, whose recipe takes
    # 0.8; bench/RESULTS.md, "Turn-taking, issue 26").
    backchannel_resume_overlap_prob: float = Field(0.7, ge=0, le=1, description="Share of resumptions after an in-pause backchannel that overlap its tail.")

    lead_in: float = Field(0.3, ge=0, description="Silence before the first word, s.")
    tail: float = Field(0.5, ge=0, description="Silence after the last word, s.")

    @model_validator(mode="after")
    def _check(self) -> "TimingConfig":
        check_min_median_max(self, "backchannel_delay", "backchannel_pause_onset")
        if self.gap_short_median > self.gap_long_median:
            raise ValueError("gap_short_median must not exceed gap_long_median")
        if self.join_silence_min > self.join_silence_max:
            raise ValueError("join_silence_min must not exceed join_silence_max")
        if self.join_silence_max >= 0.2:
            raise ValueError("join_silence_max must stay under the 200 ms IPU threshold")
        if self.interruption_min > self.interruption_max:
            raise ValueError("interruption_min must not exceed interruption_max")
        check_min_median_max(self, "pause")
        return self


# --------------------------------------------------------------------- candidates (best of N)
class CandidatesConfig(_Section):
    """Best of N (augment/candidates.py). J-Moshi-ext reportedly rendered 10 candidates per
    dialogue with different seeds and kept the lowest ASR error (secondary source, docs/method.md)."""

    n: int = Field(1, ge=1, le=64, description="Renderings per dialogue with different seeds; 1 = no selection.")
    turn_taking: float = Field(1.0, ge=0, description="Weight of the distance of realised turn-taking from the target.")
    cer: float = Field(1.0, ge=0, description="Weight of the ASR character error rate (only with asr_model).")
    asr_model: Optional[str] = Field(None, description="Local ASR model folder (faster-whisper/CTranslate2 or transformers).")
    device: str = Field("cpu", description="Device of the ASR model.")
    # Default target: J-Moshi's resynthesised human dialogues (stats.HUMAN_REFERENCE).
    target: Optional[dict[str, float]] = Field(
        None, description="Turn-taking target: ipus_per_min, overlapped_share, within_overlaps_per_min, gap_median."
    )


# -------------------------------------------------------------------------------------- models
class ModelsConfig(_Section):
    # Local file paths, or "hf://REPO/FILE" resolved through huggingface_hub (honours HF_HUB_OFFLINE).
    mimi: Optional[str] = Field(None, description="Mimi weights (tokenizer-e351c8d8-checkpoint125.safetensors).")
    text_tokenizer: Optional[str] = Field(None, description="SentencePiece model (tokenizer_spm_32k_3.model).")
    random_weights: bool = Field(False, description="Use a randomly initialised Mimi (tests only; recorded in the manifest).")


class TokenizeConfig(_Section):
    n_q: int = Field(8, ge=1, le=32, description="Mimi codebooks kept.")
    batch_size: int = Field(8, ge=1, description="Dialogue channels per Mimi forward.")
    device: str = Field("auto", description="auto, cpu or cuda[:N].")
    text_padding_id: int = TEXT_IDS.pad
    end_of_text_padding_id: int = TEXT_IDS.end_of_padding


# -------------------------------------------------------------------------------------- output
from jmoshi_augment.augment.run.output_formats import FORMAT_NAMES  # noqa: E402  (the format table names them)

OutputFormat = Literal[FORMAT_NAMES]  # type: ignore[valid-type]


class OutputConfig(_Section):
    dir: str = Field(..., description="Output folder (created; reruns resume).")
    formats: list[OutputFormat] = Field(["wav"], description="wav: moshi-finetune wav+json; tar: token shards; jmoshi: nu-dialogue parquet.")
    shard_size: int = Field(100, ge=1, description="Dialogues per tar/parquet shard.")
    main_speaker: Literal["first", "second", "both"] = Field(
        "first", description="Which corpus speaker is channel 0 (the model); both = two renderings."
    )
