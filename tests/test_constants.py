"""The fixed numbers in :mod:`jmoshi_augment.constants` agree with the libraries and trainers that
define them, so the tests that import them instead of repeating literals still pin real values."""

from __future__ import annotations

from jmoshi_augment.constants import FRAME_RATE, FRAME_SIZE, MIMI_CARDINALITY, SAMPLE_RATE, TEXT_IDS


def test_mimi_geometry_is_moshis():
    from moshi.models import loaders

    assert (SAMPLE_RATE, FRAME_RATE) == (loaders.SAMPLE_RATE, loaders.FRAME_RATE) == (24_000, 12.5)
    assert MIMI_CARDINALITY == loaders._quantizer_kwargs["bins"]
    assert FRAME_SIZE == SAMPLE_RATE / FRAME_RATE == 1920  # 80 ms


def test_text_ids_are_moshis_and_jmoshis():
    from moshi.models.tts import TokenIds

    moshi_ids = TokenIds(card=32_001)
    assert (TEXT_IDS.pad, TEXT_IDS.end_of_padding) == (moshi_ids.pad, moshi_ids.new_word)
    assert (TEXT_IDS.main_turn, TEXT_IDS.other_turn) == (moshi_ids.main, moshi_ids.other)
    # nu-dialogue moshi-finetune's J-Moshi flags: --text_padding_id 3 --end_of_text_padding_id 0
    assert (TEXT_IDS.pad, TEXT_IDS.end_of_padding) == (3, 0)
