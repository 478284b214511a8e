"""What precedes a silence, read from word timings and the unit record's script (issue 26)."""

import numpy as np

from jmoshi_augment.augment.analysis.silence_cues import cue_rows, cues_before, label_words, pool_cues, word_cue


def test_word_cues():
    assert word_cue("行ったよ。", True, False) == "sentence end"
    assert word_cue("うん", False, True) == "backchannel"
    assert word_cue("あの、", False, False) == "filler" and word_cue("あの", False, False) == "other"  # あの人
    assert word_cue("えーと、", False, False) == "filler"
    assert word_cue("けど、", False, False) == "particle" and word_cue("て", False, False) == "particle"
    assert word_cue("週末、", False, False) == "comma"
    assert word_cue("カフェ", False, False) == "other"


def test_each_silence_gets_the_cue_of_the_word_before_it():
    script = [["A", "speech", "昨日は、カフェに行ったよ。", [["昨日は、", "キノー"], ["カフェ", "カフェ"], ["に", "ニ"], ["行ったよ。", "イッタヨ"]]],
              ["B", "speech", "そっか。", [["そっか。", "ソッカ"]]],
              ["B", "backchannel", "うん", [["うん", "ウン"]]]]
    alignments = [("昨日は、", 0.3, 0.8, 0), ("うん", 1.0, 1.2, 1), ("カフェ", 1.5, 1.9, 0), ("に", 1.9, 2.0, 0),
                  ("行ったよ。", 2.0, 2.6, 0), ("そっか。", 3.0, 3.5, 1)]
    words = label_words(alignments, script, {"main": "A", "other": "B"})
    assert [c for _, _, c in words] == ["comma", "backchannel", "other", "particle", "sentence end", "sentence end"]
    # gaps: after 昨日は、 (A stops, B's backchannel), after うん (A goes on), after 行ったよ。 (B answers)
    gaps = np.array([[0.82, 0.98], [1.22, 1.48], [2.62, 2.98]])
    assert cues_before(gaps, words) == {"comma": 1, "backchannel": 1, "sentence end": 1}
    pooled = pool_cues([{"pauses": cues_before(np.zeros((0, 2)), words), "gaps": cues_before(gaps, words)}, None])
    assert pooled["gaps"]["n"] == 3 and abs(pooled["gaps"]["comma"] - 1 / 3) < 1e-9
    assert pooled["pauses"]["n"] == 0 and pooled["pauses"]["comma"] != pooled["pauses"]["comma"]  # NaN: no pauses
    assert pool_cues([None, None]) is None and cue_rows({"x": None}) == []
    assert len(cue_rows({"x": pooled})) == 2 + 6
