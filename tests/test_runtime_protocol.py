"""Message framing and display text: Japanese pieces must not arrive with spaces between words."""

from __future__ import annotations

import pytest
import sentencepiece as spm

from jmoshi_augment.runtime.protocol import Detokenizer, Message, MessageKind, ProtocolError, error, handshake, text
from runtime_helpers import SENTENCES
from token_helpers import train_sp


def test_messages_round_trip_and_unknown_kinds_are_errors():
    assert handshake() == b"\x00"  # exactly what moshi.server sends
    assert Message.decode(text("こんにちは")) == Message(MessageKind.TEXT, "こんにちは".encode())
    assert Message.decode(error("busy")).kind == MessageKind.ERROR
    with pytest.raises(ProtocolError, match="unknown message kind 0x09"):
        Message.decode(b"\x09abc")
    with pytest.raises(ProtocolError, match="empty"):
        Message.decode(b"")


@pytest.fixture(scope="module")
def bpe_sp(tmp_path_factory):
    """Not the shared character-level ``sp`` fixture: display text is about BPE pieces that carry
    the word-start mark ``▁`` glued to whole words, Japanese and Latin, so this one is BPE and has
    seen an English sentence."""
    path = train_sp(tmp_path_factory.mktemp("spm") / "m.model", SENTENCES * 4 + ["hello world, this is moshi speaking"] * 4,
                    model_type="bpe", vocab_size=500, byte_fallback=True)
    return spm.SentencePieceProcessor(model_file=str(path))


def _display(sp, sentence: str) -> str:
    detok = Detokenizer(sp)
    return "".join(detok.push(t) for t in sp.encode(sentence))


def test_japanese_has_no_spurious_spaces(bpe_sp):
    for sentence in ["えっと、明日は映画を見に行こうと思ってるんです。", "うん そうそう なるほどね"]:
        pieces = bpe_sp.encode(sentence, out_type=str)
        assert any(p.startswith("▁") for p in pieces)  # the tokenizer does mark word starts
        assert _display(bpe_sp, sentence) == sentence.replace(" ", "")


def test_latin_words_keep_their_spaces(bpe_sp):
    assert _display(bpe_sp, "hello world") == "hello world"
    assert _display(bpe_sp, "映画 hello") == "映画hello"


def test_byte_fallback_pieces_are_reassembled_and_control_ids_dropped(bpe_sp):
    ids = bpe_sp.encode("鰻")  # not in the tiny vocabulary: byte pieces
    assert any(bpe_sp.is_byte(i) for i in ids)
    detok = Detokenizer(bpe_sp)
    assert "".join(detok.push(i) for i in [bpe_sp.eos_id(), *ids, -1]) == "鰻"
