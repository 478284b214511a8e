"""The reference figures our turn-taking is judged against, typed once.

Both were measured with this package's own dGSLM definitions (:mod:`.stats`), so any figure set
beside them is like for like.
"""

from __future__ import annotations

# J-Moshi's five Mimi-resynthesised human dialogues (98 s in all) and the five stereo demo files of
# its multi-stream TTS (J-Moshi-ext's synthetic training data), measured with the package's own
# dGSLM definitions, so any figure set beside them is like for like. Source audio:
# github.com/nu-dialogue/j-moshi `static/audio/` (resynth-*.wav, daily-*.wav; CC BY-NC 4.0, measured
# locally, never committed); how to re-measure in docs/turn-taking.md ("The human reference"), our
# runs beside them in bench/RESULTS.md ("Turn-taking").
HUMAN_REFERENCE: dict[str, float] = {
    "ipus_per_min": 45.8,
    "pauses_per_min": 10.4,
    "overlapped_share": 0.39,  # between / (gaps + between)
    "within_overlaps_per_min": 6.7,  # backchannel-like overlaps
    "gap_median": 0.30,
    "shift_share_long_silence": 0.54,  # of silences > 250 ms, the other speaker talks next
    "lapse_share": 0.049,  # speaker changes after > 1 s
}
JMOSHI_MSTTS_REFERENCE: dict[str, float] = {
    "ipus_per_min": 24.3,
    "pauses_per_min": 2.0,
    "overlapped_share": 0.21,
    "within_overlaps_per_min": 0.0,
    "gap_median": 0.12,
    "shift_share_long_silence": 0.73,
    "lapse_share": 0.026,
}
