"""Kyutai DSM TTSModel backend on a tiny random multistream checkpoint saved in Kyutai's layout."""

from __future__ import annotations

import json

import numpy as np
import pytest

from jmoshi_augment.augment.speech.tts import get_backend
from jmoshi_augment.augment.speech.tts.dsm import channel_spans, turn_script
from jmoshi_augment.augment.types import MAIN, OTHER, AlignedWord
from jmoshi_augment.constants import SAMPLE_RATE
from jmoshi_augment.errors import JmoshiError
from ms_helpers import MS_LM, make_ms_model_dir, save_lm, tiny_script, write_prompt

CONDITIONERS = {
    "control": {"type": "lut", "lut": {"n_bins": 2, "dim": 16, "tokenizer": "noop", "possible_values": ["ok"]}},
    "cfg": {"type": "lut", "lut": {"n_bins": 4, "dim": 16, "tokenizer": "noop", "possible_values": ["1.0", "2.0"]}},
}


@pytest.fixture(scope="module")
def dsm_dir(tmp_path_factory):
    import sentencepiece

    folder = make_ms_model_dir(tmp_path_factory.mktemp("dsm") / "model", shared=tmp_path_factory.getbasetemp() / "ms_shared")
    config = dict(MS_LM, conditioners=CONDITIONERS, fuser={"sum": ["control", "cfg"]})
    config["text_card"] = sentencepiece.SentencePieceProcessor(model_file=str(folder / "tokenizer_spm_32k_3.model")).vocab_size()
    save_lm(folder, config, extra={"tts_config": {"audio_delay": 0.16, "multistream": True},
                                   "model_id": {"sig": "tiny", "epoch": 0}})
    write_prompt(folder / "pair.wav")
    return folder


@pytest.fixture(scope="module")
def backend(dsm_dir):
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield get_backend("dsm", model=str(dsm_dir), voices=[str(dsm_dir / "pair.wav")], device="cpu", max_gen_length=150,
                 sentence_break=0.3, max_padding=1)
    torch.set_num_threads(before)


def test_turn_script_alternates_and_marks_breaks():
    turns, words = turn_script(tiny_script(), "A", sentence_break=0.3)
    assert turns[0].split() == ["今日", "は", "いい", "天気"] and turns[1] == "うん"
    assert len(turns) == 5 and [w.channel for w in words][:5] == [MAIN] * 4 + [OTHER]
    other_first, _ = turn_script(tiny_script(), "B")
    assert other_first[0] == ""  # DSM: an empty first turn lets the other speaker open
    assert [w.entry for w in words if w.surface == "。"] == ["。"]


def test_turn_script_reads_the_scripts_readings():
    """A rule-read word (5km) is given to DSM as its reading; its alignment keeps the surface."""
    from dataclasses import replace

    from jmoshi_augment.augment.types import Word

    script = tiny_script()
    first = script.segments[0]
    seg = replace(first, words=(Word("5km", "ゴキロ", 3, "名詞-数詞", rule=True),) + first.words[1:])
    turns, words = turn_script(replace(script, segments=(seg,) + script.segments[1:]), "A")
    assert turns[0].split()[0] == "ゴキロ" and words[0].surface == "5km" and words[0].entry == "ゴキロ"


def test_mono_output_is_split_at_turn_starts():
    words = [AlignedWord("a", 0.2, 0.5, MAIN), AlignedWord("b", 1.0, 1.3, OTHER), AlignedWord("c", 2.0, 2.2, MAIN)]
    spans = channel_spans(words, [0, 1, 2], SAMPLE_RATE * 3)
    assert spans == [(MAIN, 0, SAMPLE_RATE), (OTHER, SAMPLE_RATE, 2 * SAMPLE_RATE), (MAIN, 2 * SAMPLE_RATE, 3 * SAMPLE_RATE)]


def test_multistream_dsm_renders_both_channels_with_word_times(backend):
    assert backend.tts.multistream and not backend.tts.multi_speaker
    out = backend.render_dialogue(tiny_script(), "A", None, np.random.default_rng(0))
    assert out.audio.shape[0] == 2 and out.audio.shape[1] > 0 and out.audio.dtype == np.float32
    assert len(out.words) == sum(len(s.words) for s in tiny_script().segments)
    starts = [w.start for w in out.words]
    assert starts == sorted(starts) and all(0 <= w.start <= w.end <= out.duration + 1e-9 for w in out.words)
    assert out.meta["tts"]["prefix_frames"] > 0 and out.meta["tts"]["voice_pair"] == "pair"
    # the prefix (voice prompt) is not part of the output: the first word starts near 0
    assert min(starts) < 1.0


def test_checkpoint_errors(tmp_path, tmp_path_factory, dsm_dir):
    folder = make_ms_model_dir(tmp_path / "plain", shared=tmp_path_factory.getbasetemp() / "ms_shared")
    with pytest.raises(JmoshiError, match="not a DSM TTS checkpoint"):
        get_backend("dsm", model=str(folder), device="cpu")
    cfg = json.loads((dsm_dir / "config.json").read_text())
    cfg.pop("conditioners")
    (folder / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(JmoshiError, match="no conditioners"):
        get_backend("dsm", model=str(folder), device="cpu")


def test_voice_errors(backend, tmp_path, dsm_dir):
    from jmoshi_augment.augment.speech.tts.dsm import DsmTTS

    with pytest.raises(JmoshiError, match="unknown voice"):
        backend._voice_files("nobody")
    mono = write_prompt(tmp_path / "mono.wav", channels=1)
    with pytest.raises(JmoshiError, match="needs a stereo voice prefix"):
        DsmTTS(backend.tts, voices=[mono])._prefix(mono)
    with pytest.raises(JmoshiError, match="voice file not found"):
        DsmTTS(backend.tts, voices=[tmp_path / "x.wav"])
