"""Message framing and display text: Japanese pieces must not arrive with spaces between words."""

from __future__ import annotations

import pytest
import sentencepiece as spm

from jmoshi_augment.runtime.protocol import Detokenizer, Message, MessageKind, ProtocolError, error, handshake, text
from runtime_helpers import SENTENCES


def test_messages_round_trip_and_unknown_kinds_are_errors():
    assert handshake() == b"\x00"  # exactly what moshi.server sends
    assert Message.decode(text("こんにちは")) == Message(MessageKind.TEXT, "こんにちは".encode())
    assert Message.decode(error("busy")).kind == MessageKind.ERROR
    with pytest.raises(ProtocolError, match="unknown message kind 0x09"):
        Message.decode(b"\x09abc")
    with pytest.raises(ProtocolError, match="empty"):
        Message.decode(b"")


@pytest.fixture(scope="module")
def sp(tmp_path_factory):
    folder = tmp_path_factory.mktemp("spm")
    corpus = folder / "c.txt"
    corpus.write_text("\n".join(SENTENCES * 4 + ["hello world, this is moshi speaking"] * 4), encoding="utf-8")
    spm.SentencePieceTrainer.train(
        input=str(corpus), model_prefix=str(folder / "m"), vocab_size=500, model_type="bpe",
        character_coverage=1.0, byte_fallback=True, hard_vocab_limit=False, minloglevel=2,
    )
    return spm.SentencePieceProcessor(model_file=str(folder / "m.model"))


def _display(sp, sentence: str) -> str:
    detok = Detokenizer(sp)
    return "".join(detok.push(t) for t in sp.encode(sentence))


def test_japanese_has_no_spurious_spaces(sp):
    for sentence in ["えっと、明日は映画を見に行こうと思ってるんです。", "うん そうそう なるほどね"]:
        pieces = sp.encode(sentence, out_type=str)
        assert any(p.startswith("▁") for p in pieces)  # the tokenizer does mark word starts
        assert _display(sp, sentence) == sentence.replace(" ", "")


def test_latin_words_keep_their_spaces(sp):
    assert _display(sp, "hello world") == "hello world"
    assert _display(sp, "映画 hello") == "映画hello"


def test_byte_fallback_pieces_are_reassembled_and_control_ids_dropped(sp):
    ids = sp.encode("鰻")  # not in the tiny vocabulary: byte pieces
    assert any(sp.is_byte(i) for i in ids)
    detok = Detokenizer(sp)
    assert "".join(detok.push(i) for i in [sp.eos_id(), *ids, -1]) == "鰻"
