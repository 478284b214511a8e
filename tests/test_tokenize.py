"""Text placement on the 12.5 Hz grid (hand-computed streams) and batched Mimi encoding."""

from __future__ import annotations

import numpy as np
import pytest

from jmoshi_augment.augment.tokens.text_tokens import display_piece, place_text_tokens
from jmoshi_augment.augment.tokens.tokenize import MimiEncoder, num_frames, tokenize_dialogues
from jmoshi_augment.augment.types import MAIN, OTHER, SAMPLE_RATE
from jmoshi_augment.constants import FRAME_SIZE, TEXT_IDS
from jmoshi_augment.errors import JmoshiError
from jmoshi_augment.recipe import TokenizeConfig

from token_helpers import rendered, varied_mimi

P, E = TEXT_IDS.pad, TEXT_IDS.end_of_padding


@pytest.fixture(scope="module")
def mimi():
    return varied_mimi()


def stream(sp, n: int, tokens: dict[int, str | int]) -> list[int]:
    out = [P] * n
    for frame, tok in tokens.items():
        out[frame] = tok if isinstance(tok, int) else sp.piece_to_id(tok)
    return out


# ------------------------------------------------------------------------------ text placement


def test_tokenizer_premises(sp):
    # The hand-computed streams below assume these pieces.
    assert sp.encode_as_pieces("はいこんにちはね") == ["▁", "は", "い", "こんにちは", "ね"]
    assert sp.encode_as_pieces("天気です") == ["▁", "天気", "で", "す"]
    assert sp.encode_as_pieces("鬱だ")[1:4] == ["<0xE9>", "<0xAC>", "<0xB1>"]
    assert [sp.id_to_piece(i) for i in range(4)] == ["<unk>", "<s>", "</s>", "[PAD]"]


def test_tokens_in_one_frame_move_to_the_next_free_frame(sp):
    # は 0.40 s → frame 5 (end of padding in 4); い 0.44 s → frame 5, taken → 6;
    # こんにちは 0.50 s → 6, taken → 7; ね 0.50 s → 6, 7 taken → 8.
    words = [("はい", 0.40, 0.48), ("こんにちは", 0.50, 1.00), ("ね", 0.50, 0.52)]
    ids, dropped = place_text_tokens(words, sp, 12)
    assert ids.dtype == np.int32 and ids.shape == (12,)
    assert ids.tolist() == stream(sp, 12, {4: E, 5: "は", 6: "い", 7: "こんにちは", 8: "ね"})
    assert dropped == 0
    # words are sorted by start (stably: こんにちは and ね keep their order)
    assert place_text_tokens([words[1], words[2], words[0]], sp, 12)[0].tolist() == ids.tolist()


def test_multi_character_words_and_words_split_over_pieces(sp):
    # 天気です over [1.0, 1.8]: 0.2 s per character; pieces 天気 (1.0 s → 12), で (1.4 → 17),
    # す (1.6 → 20). こんにち + は join into the single piece こんにちは, which starts at 2.0 s:
    # frame int(2.0 // 0.08) = 24 (the trainer's arithmetic; 2.0 / 0.08 would say 25).
    words = [("天気です", 1.0, 1.8), ("こんにち", 2.0, 2.4), ("は", 2.4, 2.5)]
    ids, dropped = place_text_tokens(words, sp, 40)
    expected = stream(sp, 40, {11: E, 12: "天気", 16: E, 17: "で", 19: E, 20: "す", 23: E, 24: "こんにちは"})
    assert ids.tolist() == expected
    assert dropped == 0


def test_byte_fallback_pieces_are_removed(sp):
    # 鬱 is not in the vocabulary: its three byte pieces are dropped; だ keeps its own time (3.08 s → 38).
    ids, dropped = place_text_tokens([("鬱だ", 3.0, 3.16)], sp, 45)
    assert ids.tolist() == stream(sp, 45, {37: E, 38: "だ"})
    assert dropped == 0
    assert not any(sp.is_byte(int(i)) for i in ids)


def test_tokens_without_a_frame_are_dropped_and_counted(sp):
    # 20 one-character pieces in [0, 0.08]: the trainer's stream is int((0.08 + 1) * 12.5) = 13
    # frames, so 13 are placed (frames 0-12) and 7 dropped; a shorter audio cuts more.
    words = [("あ" * 20, 0.0, 0.08)]
    a = sp.piece_to_id("あ")
    ids, dropped = place_text_tokens(words, sp, 20)
    assert ids.tolist() == [a] * 13 + [P] * 7 and dropped == 7
    ids, dropped = place_text_tokens(words, sp, 10)
    assert ids.tolist() == [a] * 10 and dropped == 10


def test_stream_is_padded_or_cut_to_the_audio_length(sp):
    assert place_text_tokens([], sp, 5)[0].tolist() == [P] * 5
    assert place_text_tokens([("はい", 0.0, 0.1)], sp, 0)[0].shape == (0,)
    ids, dropped = place_text_tokens([("ね", 0.9, 1.0)], sp, 11)  # token at frame 11 is past the audio
    assert ids.tolist() == stream(sp, 11, {10: E}) and dropped == 1


def test_custom_padding_ids(sp):
    ids, _ = place_text_tokens([("ね", 0.16, 0.2)], sp, 4, pad_id=7, eop_id=9)
    assert ids.tolist() == [7, 9, sp.piece_to_id("ね"), 7]


def test_bad_word_times_are_rejected(sp):
    with pytest.raises(JmoshiError, match=r"word 'は' has a bad time span \[0.5, 0.4\]"):
        place_text_tokens([("は", 0.5, 0.4)], sp, 10)
    with pytest.raises(JmoshiError, match="bad time span"):
        place_text_tokens([("は", -0.1, 0.4)], sp, 10)


def test_display_piece_shows_no_word_boundary_marks(sp):
    assert display_piece(sp, sp.piece_to_id("▁")) == ""
    assert display_piece(sp, sp.piece_to_id("天気")) == "天気"


# -------------------------------------------------------------------------------------- Mimi


@pytest.mark.parametrize("n, t", [(1, 1), (FRAME_SIZE - 1, 1), (FRAME_SIZE, 1), (FRAME_SIZE + 1, 2), (SAMPLE_RATE + 7, 13)])
def test_num_frames_is_ceil_of_samples_over_frame_size(n, t):
    assert num_frames(n) == t


def test_batched_encoding_equals_one_by_one_and_plain_mimi(mimi):
    import torch

    rng = np.random.default_rng(1)
    audios = [(0.2 * rng.standard_normal((2, n))).astype(np.float32) for n in (9_000, 1921, 15_000)]
    audios[1][1] = 0.0  # a silent channel
    batched = MimiEncoder(mimi, n_q=8, batch_size=6, device="cpu").encode(audios)
    single = MimiEncoder(mimi, n_q=8, batch_size=1, device="cpu").encode(audios)
    capped = MimiEncoder(mimi, n_q=8, batch_size=6, device="cpu", max_batch_seconds=3.0).encode(audios)
    for audio, b, s, c in zip(audios, batched, single, capped):
        t = -(-audio.shape[1] // FRAME_SIZE)
        assert b.shape == (2, 8, t) and b.dtype == np.int16
        np.testing.assert_array_equal(b, s)
        np.testing.assert_array_equal(b, c)
        with torch.inference_mode():  # the reference: moshi's own encode, one channel at a time
            for ch in (0, 1):
                ref = mimi.encode(torch.from_numpy(audio[ch])[None, None])[0].numpy()
                np.testing.assert_array_equal(b[ch], ref)
    # not vacuous: the codes vary over time and between channels
    assert len(np.unique(batched[0][0, 0])) > 3
    assert not np.array_equal(batched[0][0], batched[0][1])


def test_encoder_rejects_bad_input(mimi):
    with pytest.raises(JmoshiError, match="n_q=33 but this Mimi has 32 codebooks"):
        MimiEncoder(mimi, n_q=33, batch_size=2, device="cpu")
    enc = MimiEncoder(mimi, n_q=8, batch_size=2, device="cpu")
    with pytest.raises(JmoshiError, match=r"audio 1: expected a non-empty stereo signal \[2, N\], got shape \(3, 10\)"):
        enc.encode([np.zeros((2, 10), np.float32), np.zeros((3, 10), np.float32)])


def test_tokenize_dialogues_places_each_channels_words(mimi, sp):
    # Main = the corpus's second speaker: A (the first) is on the other channel.
    r = rendered(
        "corp-7-mainB",
        seconds=1.6,
        words=[("こんにちは", 0.1, 0.5, OTHER), ("はい", 0.25, 0.4, MAIN), ("天気", 1.0, 1.2, MAIN)],
        speaker_map={"main": "B", "other": "A"},
    )
    cfg = TokenizeConfig(n_q=8)
    (tok,) = tokenize_dialogues([r], MimiEncoder(mimi, 8, 4, "cpu"), sp, cfg)
    t = num_frames(r.audio.shape[1])
    assert tok.codes.shape == (2, 8, t) and tok.text.shape == (2, t) and tok.text.dtype == np.int32
    # each word's first piece sits in its start frame, end-of-padding just before
    assert tok.text[OTHER, 1] == sp.piece_to_id("こんにちは") and tok.text[OTHER, 0] == E
    assert tok.text[MAIN, 3] == sp.piece_to_id("は") and tok.text[MAIN, 4] == sp.piece_to_id("い")
    assert tok.text[MAIN, 12] == sp.piece_to_id("天気") and tok.text[MAIN, 11] == E
    assert tok.meta["a_channel"] == OTHER and tok.meta["speakers"] == ["A", "B"]
    assert tok.meta["id"] == "corp-7-mainB" and tok.meta["dialogue_id"] == "corp-7"
    assert tok.meta["num_samples"] == r.audio.shape[1] and tok.meta["dropped_tokens"] == 0
    assert tok.duration == pytest.approx(1.6)
