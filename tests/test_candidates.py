"""Best of N: scorers on controlled audio, selection, and N seeds through the tiny moshi_ms backend."""

from __future__ import annotations

import math

import numpy as np
import pytest

from jmoshi_augment.augment.run.candidates import (
    CerScorer,
    TurnTakingScorer,
    TurnTakingTarget,
    best_of_n,
    build_scorers,
    edit_distance,
    normalize_for_cer,
    render_candidates,
    select_best,
)
from jmoshi_augment.augment.types import AlignedWord, Placement, RenderedDialogue, Timeline
from jmoshi_augment.constants import SAMPLE_RATE
from jmoshi_augment.errors import JmoshiError
from ms_helpers import make_ms_model_dir, tiny_script, write_prompt

SR = SAMPLE_RATE


def dialogue(spans, dur=8.0, words=(), name="x", seed=None) -> RenderedDialogue:
    """Stereo tones over a faint noise floor: ``spans`` = [(channel, start, end)]."""
    rng = np.random.default_rng(0)
    audio = (0.001 * rng.standard_normal((2, int(dur * SR)))).astype(np.float32)
    t = np.arange(audio.shape[1]) / SR
    for ch, s, e in spans:
        m = (t >= s) & (t < e)
        audio[ch, m] += (0.3 * np.sin(2 * np.pi * (150 + 100 * ch) * t[m])).astype(np.float32)
    meta = {"tts": {"seed": seed}} if seed is not None else {}
    return RenderedDialogue(name, name, "test", audio, tuple(words), {"main": "A", "other": "B"}, ("A", "B"), meta=meta)


GAPS = [(0, 0.5, 2.5), (1, 2.9, 4.0), (0, 4.4, 6.0), (1, 6.3, 7.5)]
OVERLAPS = [(0, 0.5, 2.5), (1, 2.1, 4.0), (0, 3.6, 6.0), (1, 5.7, 7.5)]


def test_edit_distance_and_normalisation():
    assert edit_distance("kitten", "sitting") == 3
    assert edit_distance("", "abc") == 3 and edit_distance("abc", "") == 3
    assert edit_distance("こんにちは", "こんにちわ") == 1
    assert normalize_for_cer("ＡＢＣ、 です！") == "abcです"


def test_turn_taking_scorer_prefers_the_candidate_closer_to_the_target():
    gaps, overlaps = dialogue(GAPS), dialogue(OVERLAPS)
    wants_overlap = TurnTakingScorer(TurnTakingTarget(overlapped_share=1.0))
    assert wants_overlap.realised(gaps)["overlapped_share"] == 0.0
    assert wants_overlap(overlaps, tiny_script()) < wants_overlap(gaps, tiny_script())
    wants_gaps = TurnTakingScorer(TurnTakingTarget(overlapped_share=0.0, gap_median=0.4))
    assert wants_gaps(gaps, tiny_script()) < wants_gaps(overlaps, tiny_script())


def test_target_from_planned_timeline():
    placements = tuple(Placement(i, i % 2, float(i)) for i in range(5))
    tl = Timeline(placements, 60.0, "A", {"speaker_changes": 4, "overlaps": 1, "interruptions": 1, "backchannels": 3})
    t = TurnTakingTarget.from_timeline(tl)
    assert (t.ipus_per_min, t.overlapped_share, t.within_overlaps_per_min, t.gap_median) == (5.0, 0.5, 3.0, None)
    assert TurnTakingTarget.human().overlapped_share == pytest.approx(0.39)


def test_cer_scorer_pools_both_channels():
    words = [AlignedWord("こんにちは", 0.5, 2.0, 0), AlignedWord("うん", 2.9, 3.5, 1)]
    d = dialogue([(0, 0.5, 2.0), (1, 2.9, 3.5)], dur=4.0, words=words)
    heard = []

    def fake_asr(audio16k: np.ndarray) -> str:
        assert audio16k.dtype == np.float32 and len(audio16k) == 4 * 16000
        heard.append(audio16k)
        # the main channel holds the 150 Hz tone in its first two seconds: answer per channel
        return "こんにちわ。" if np.abs(audio16k[8000:32000]).mean() > 0.05 else "うん"

    assert CerScorer(fake_asr)(d, tiny_script()) == pytest.approx(1 / 7)
    assert len(heard) == 2


def test_select_best_keeps_lowest_total_and_reports_every_candidate():
    cands = [dialogue(GAPS, name="a", seed=1), RuntimeError("script not consumed"), dialogue(OVERLAPS, name="b", seed=3)]
    wants_overlap = TurnTakingScorer(TurnTakingTarget(overlapped_share=1.0))
    sel = select_best(cands, tiny_script(), [(wants_overlap, 1.0)])
    assert sel.index == 2 and sel.best is cands[2]
    reports = sel.best.meta["candidates"]
    assert [r["index"] for r in reports] == [0, 1, 2] and reports[1]["failed"] == "script not consumed"
    assert reports[1]["total"] is None and reports[2]["seed"] == 3
    assert reports[2]["total"] < reports[0]["total"]
    none = select_best([RuntimeError("x")], tiny_script(), [(wants_overlap, 1.0)])
    assert none.best is None and none.index == -1


def test_selection_keeps_every_candidates_seed_scores_and_why_it_lost():
    cands = [dialogue(GAPS, name="a", seed=1), RuntimeError("script not consumed"), dialogue(OVERLAPS, name="b", seed=3)]
    wants_overlap = TurnTakingScorer(TurnTakingTarget(overlapped_share=1.0))
    sel = select_best(cands, tiny_script(), [(wants_overlap, 1.0)], seeds=[11, 12, 13])
    record = sel.to_dict()
    assert record["winner"] == 2
    won, failed, lost = record["candidates"][2], record["candidates"][1], record["candidates"][0]
    assert won["winner"] and "lost" not in won and won["seed"] == 3  # the backend's own seed wins over ours
    assert failed == {"index": 1, "seed": 12, "total": None, "scores": {}, "winner": False, "failed": "script not consumed"}
    assert lost["lost"] == f"total {lost['total']:.4g} > {won['total']:.4g} of candidate 2"
    assert set(lost["scores"]) == {"turn_taking"} and not lost["winner"]

    nothing = select_best([RuntimeError("script not consumed"), RuntimeError("out of memory")], tiny_script(),
                          [(wants_overlap, 1.0)], seeds=[5, 6])
    assert nothing.to_dict()["winner"] is None
    assert nothing.failure_summary() == ("all 2 candidates failed: #0 (seed 5): script not consumed; "
                                         "#1 (seed 6): out of memory")


def test_build_scorers_validates():
    scorers = build_scorers(target={"overlapped_share": 0.4})
    assert [s.name for s, _ in scorers] == ["turn_taking"] and scorers[0][0].target.overlapped_share == 0.4
    with pytest.raises(JmoshiError, match="unknown turn-taking target keys.*overlap"):
        build_scorers(target={"overlap": 0.4})
    with pytest.raises(JmoshiError, match="no scorer left"):
        build_scorers(turn_taking=0)
    with pytest.raises(JmoshiError, match="ASR model directory not found"):
        build_scorers(asr_model="/nonexistent/whisper")


def test_asr_dir_without_model_files_is_refused(tmp_path):
    with pytest.raises(JmoshiError, match="not an ASR model directory"):
        CerScorer.from_model_dir(tmp_path)


def test_render_candidates_with_a_per_seed_backend():
    class OneAtATime:
        def render_dialogue(self, script, main, voice, rng):
            x = float(rng.random())
            if x < 0.3:
                raise RuntimeError(f"failed at {x:.2f}")
            return dialogue(GAPS, name=f"{x:.3f}")

    out = render_candidates(OneAtATime(), tiny_script(), "A", None, np.random.default_rng(0), 6)
    assert len(out) == 6 and len({o.id for o in out if isinstance(o, RenderedDialogue)}) == sum(
        isinstance(o, RenderedDialogue) for o in out)
    with pytest.raises(JmoshiError, match="candidates.n: must be >= 1"):
        render_candidates(OneAtATime(), tiny_script(), "A", None, np.random.default_rng(0), 0)


@pytest.fixture(scope="module")
def ms_backend(tmp_path_factory):
    import torch

    from jmoshi_augment.augment.speech.tts import get_backend

    before = torch.get_num_threads()
    torch.set_num_threads(1)  # batched tiny-model steps stall on thread hand-offs on 2 shared cores
    folder = make_ms_model_dir(tmp_path_factory.mktemp("cand") / "model", shared=tmp_path_factory.getbasetemp() / "ms_shared")
    write_prompt(folder / "pair.wav")
    yield get_backend("moshi_ms", model=str(folder), prompts=[str(folder)], device="cpu", max_frames=60, tail_frames=2, batch_size=3)
    torch.set_num_threads(before)


def test_best_of_n_on_the_multistream_backend_picks_the_preferred_seed(ms_backend):
    class Shortest:
        name = "duration"

        def __call__(self, rendered, script):
            return rendered.duration

    sel = best_of_n(ms_backend, tiny_script(), "A", None, np.random.default_rng(7), 3, [(Shortest(), 1.0)])
    reports = sel.best.meta["candidates"]
    assert len(reports) == 3 and len({r["seed"] for r in reports}) == 3
    totals = [r["total"] for r in reports]
    assert sel.index == int(np.argmin(totals)) and sel.best.duration == pytest.approx(min(totals), abs=1e-6)
    assert sel.best.meta["tts"]["seed"] == reports[sel.index]["seed"]
    assert not math.isnan(totals[sel.index])
