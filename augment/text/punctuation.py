"""Japanese punctuation classes, named once for every stage.

The script keeps a mark on the word before it because the mark is a prosodic cue: a clause comma
carries a pause and non-final pitch, a sentence-final mark a fall or a rise. The backends read
those cues from the same classes, so a change here changes every place that asks "does this
word end a sentence?".
"""

from __future__ import annotations

CLAUSE = "、"  # a clause boundary inside a sentence (pause, non-final pitch)
SENTENCE_FINAL = "。！？…"  # marks that end a sentence
EXCLAIM_QUESTION = "！？"  # sentence-final marks after which a clause may still run on (…！って)
PROSODIC = CLAUSE + SENTENCE_FINAL  # every mark that carries a pause or intonation cue
LENGTHENERS = "〜ー"  # after kana they stretch the word's last vowel (そうだね〜)
