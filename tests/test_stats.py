"""Turn-taking statistics on generated signals with planted events: counts exact, times ±20 ms."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
import soundfile as sf

from jmoshi_augment.augment.analysis.stats import (
    BETWEEN,
    HUMAN_REFERENCE,
    WITHIN,
    DialogueStats,
    analyze,
    analyze_intervals,
    analyze_paths,
    detect_activity,
    summarize,
    write_stats_files,
)
from jmoshi_augment.augment.analysis.vad import VadOptions
from jmoshi_augment.constants import SAMPLE_RATE
from jmoshi_augment.errors import JmoshiError

SR = SAMPLE_RATE
TOL = 0.02  # seconds


def _burst(n: int, start: float, end: float, kind: str, rng: np.random.Generator, sr: int, amp: float = 0.3) -> np.ndarray:
    """A speech stand-in: a tone or a syllable-rate modulated noise burst with 5 ms ramps."""
    t = np.arange(int(round(start * sr)), int(round(end * sr))) / sr
    if kind == "tone":
        x = np.sin(2 * np.pi * 220.0 * t)
    else:
        x = rng.uniform(-1, 1, len(t)) * (0.75 + 0.25 * np.sin(2 * np.pi * 4.0 * t))
    ramp = min(int(0.005 * sr), len(t) // 2)
    env = np.ones(len(t))
    env[:ramp] = env[-ramp:][::-1] = 0.5 - 0.5 * np.cos(np.pi * np.arange(ramp) / ramp)
    out = np.zeros(n, np.float32)
    out[int(round(start * sr)) : int(round(start * sr)) + len(t)] = amp * x * env
    return out


def _stereo(plan: list[list[tuple[float, float]]], duration: float, sr: int = SR, noise_db: float = -50.0, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    n = int(duration * sr)
    audio = np.zeros((2, n), np.float32)
    for ch, bursts in enumerate(plan):
        for i, (a, b) in enumerate(bursts):
            audio[ch] += _burst(n, a, b, "tone" if i % 2 == 0 else "noise", rng, sr)
        audio[ch] += rng.normal(0, 10 ** (noise_db / 20), n).astype(np.float32)
    return audio


def _close(got: np.ndarray, want: list, tol: float = TOL) -> None:
    got = np.asarray(got, dtype=float).reshape(np.asarray(want, dtype=float).shape)
    assert np.abs(got - np.asarray(want, dtype=float)).max(initial=0) <= tol, (got, want)


# A scripted dialogue (seconds). Main speaks a turn with a 100 ms hole (bridged into one IPU),
# other takes over after a 0.4 s gap, main backchannels inside it, main takes the floor 0.2 s
# early, pauses 0.3 s, other answers after 0.6 s, pauses 0.5 s, main cuts in 0.3 s early and other
# backchannels. Edge silences: 0.5 s before, 1.0 s after.
# Every planted time is moved off the 10 ms analysis grid by its own 1-9 ms (``J``), so the
# detector's frame quantisation is really exercised.


def J(x):
    """Nominal time(s) → planted time(s): the same nominal time always maps to the same instant."""
    if isinstance(x, (list, tuple)):
        return [J(v) for v in x]
    return round(x + 0.001 * (1 + int(round(x * 100)) * 7 % 9), 4)


MAIN_BURSTS = J([(0.5, 1.2), (1.3, 2.0), (3.0, 3.4), (3.8, 6.0), (6.3, 7.5), (10.2, 12.0)])
OTHER_BURSTS = J([(2.4, 4.0), (8.1, 9.0), (9.5, 10.5), (11.0, 11.3)])
DIALOGUE = [MAIN_BURSTS, OTHER_BURSTS]


def D(a, b):
    """Planted duration between nominal times a and b."""
    return J(b) - J(a)


@pytest.fixture(scope="module")
def planted() -> DialogueStats:
    return analyze(_stereo(DIALOGUE, 13.0), SR, name="planted")


def test_detect_activity_recovers_every_burst_over_a_noise_floor():
    act = detect_activity(_stereo(DIALOGUE, 13.0), SR)
    assert [len(a) for a in act] == [6, 4]  # the 100 ms hole is still there: no bridging yet
    _close(act[0], MAIN_BURSTS)
    _close(act[1], OTHER_BURSTS)


def test_ipus_bridge_silences_under_200_ms(planted):
    _close(planted.ipus[0], J([(0.5, 2.0), (3.0, 3.4), (3.8, 6.0), (6.3, 7.5), (10.2, 12.0)]))
    _close(planted.ipus[1], OTHER_BURSTS)


def test_pauses_gaps_overlaps_and_fto(planted):
    c = planted.counts()
    assert c == {
        "ipus": 9, "pauses": 2, "gaps": 2, "overlaps": 4, "overlaps_between": 2,
        "overlaps_within": 2, "speaker_changes": 4, "backchannel_ipus": 2,
    }
    _close(planted.pauses, J([(6.0, 6.3), (9.0, 9.5)]))
    _close(planted.gaps, J([(2.0, 2.4), (7.5, 8.1)]))
    _close(planted.overlaps, J([(3.0, 3.4), (3.8, 4.0), (10.2, 10.5), (11.0, 11.3)]))
    assert planted.overlap_kind.tolist() == [WITHIN, BETWEEN, BETWEEN, WITHIN]
    _close(planted.fto, [D(2.0, 2.4), -D(3.8, 4.0), D(7.5, 8.1), -D(10.2, 10.5)])
    _close(planted.backchannels[0], J([(3.0, 3.4)]))
    _close(planted.backchannels[1], J([(11.0, 11.3)]))
    # Interior silences > 250 ms: the 0.3 s and 0.5 s pauses and the 0.4 s and 0.6 s gaps.
    assert (planted.long_silences, planted.long_silence_shifts) == (4, 2)


def test_intervals_give_the_same_events_as_the_audio(planted):
    # Word alignments or a plan, unsorted and overlapping, on the same 10 ms grid.
    main = MAIN_BURSTS[::-1] + [(J(3.8) + 0.1, J(3.8) + 0.5)]
    st = analyze_intervals([main, OTHER_BURSTS], 13.0)
    assert st.counts() == planted.counts()
    _close(st.fto, [D(2.0, 2.4), -D(3.8, 4.0), D(7.5, 8.1), -D(10.2, 10.5)], tol=0.011)  # grid rounding only
    _close(st.backchannels[1], J([(11.0, 11.3)]), tol=0.006)
    with pytest.raises(JmoshiError, match="activity for 2 channels, got 1"):
        analyze_intervals([main], 13.0)


def test_summary_rates_shares_and_medians(planted):
    s = summarize([planted, planted])
    minutes = 2 * 13.0 / 60
    assert s["dialogues"] == 2 and s["minutes"] == pytest.approx(minutes)
    assert s["ipus_per_min"] == pytest.approx(18 / minutes)
    assert s["gaps_per_min"] == pytest.approx(4 / minutes)
    assert s["backchannel_ipus_per_min"] == pytest.approx(4 / minutes)
    assert s["within_overlaps_per_min"] == pytest.approx(4 / minutes)
    assert s["between_overlaps_per_min"] == pytest.approx(4 / minutes)
    assert s["overlapped_share"] == pytest.approx(0.5)
    assert s["shift_share_long_silence"] == pytest.approx(0.5)
    assert s["gap_median"] == pytest.approx((D(2.0, 2.4) + D(7.5, 8.1)) / 2, abs=TOL)
    assert s["pause_median"] == pytest.approx((D(6.0, 6.3) + D(9.0, 9.5)) / 2, abs=TOL)
    assert s["fto_median"] == pytest.approx((D(2.0, 2.4) - D(3.8, 4.0)) / 2, abs=TOL)
    assert s["lapse_share"] == 0.0
    speech = D(0.5, 2.0) + D(3.0, 3.4) + D(3.8, 6.0) + D(6.3, 7.5) + D(10.2, 12.0)
    assert s["speech_ratio_main"] == pytest.approx(speech / 13, abs=0.005)
    assert s["overlap_s_per_min"] == pytest.approx(2 * 1.2 / minutes, abs=0.2)
    assert set(HUMAN_REFERENCE) <= set(s)


def test_backchannel_ipus_need_the_partner_to_keep_the_floor_and_within_needs_under_1_s():
    # Main talks 0.5-4 s. Other: a 1.5 s overlap inside it (too long for within: between), then a
    # 0.4 s unit at 3.8 s that outlasts main, after which *other* speaks on (a takeover).
    plan = [J([(0.5, 4.0), (6.0, 7.0)]), J([(1.0, 2.5), (3.8, 4.2), (4.6, 5.5)])]
    st = analyze(_stereo(plan, 8.0), SR)
    assert len(st.backchannels[1]) == 0 and len(st.backchannels[0]) == 0
    assert st.overlap_kind.tolist() == [BETWEEN, BETWEEN]
    _close(st.fto, [-D(1.0, 2.5), -D(3.8, 4.0), D(5.5, 6.0)])  # other pauses 4.2-4.6 s, then a gap to main
    _close(st.pauses, J([(4.2, 4.6)]))


def test_dgslm_definitions_on_planted_events():
    """Every rule of the published definitions, one planted case each (seconds, off the grid)."""
    plan = [
        J([(0.5, 5.0), (5.1, 8.0), (9.0, 9.03), (10.0, 11.0), (11.5, 14.0), (16.0, 20.0)]),
        J([(1.0, 1.9), (3.0, 4.1), (4.6, 5.4), (8.3, 9.5), (12.6, 12.9), (14.25, 15.5), (17.0, 17.95)]),
    ]
    # main: 0.5-8.0 is one IPU (its 100 ms hole is < 200 ms); the 30 ms blip at 9.0 s is dropped.
    # other inside main's first IPU: 0.9 s within; 1.1 s between (not < 1 s); 0.8 s across main's
    # bridged hole: within. Then gap 8.0-8.3, other alone, gap 9.5-10.0 (the blip is no speech),
    # pause 11.0-11.5, 0.3 s within, gap 14.0-14.25, gap 15.5-16.0, 0.95 s within.
    st = analyze(_stereo(plan, 21.0), SR)
    assert [len(i) for i in st.ipus] == [4, 7]
    _close(st.ipus[0], J([(0.5, 8.0), (10.0, 11.0), (11.5, 14.0), (16.0, 20.0)]))
    assert st.overlap_kind.tolist() == [WITHIN, BETWEEN, WITHIN, WITHIN, WITHIN]
    _close(st.gaps, J([(8.0, 8.3), (9.5, 10.0), (14.0, 14.25), (15.5, 16.0)]))
    _close(st.pauses, J([(11.0, 11.5)]))
    s = summarize([st])
    assert s["overlapped_share"] == pytest.approx(1 / (4 + 1))
    assert s["within_overlaps_per_min"] == pytest.approx(4 / (21 / 60))


def test_an_backchannel_in_a_partner_pause_splits_the_partner_ipu_and_counts_as_between():
    # The old planner's failure mode: main pauses 0.3 s; other's 0.4 s うん starts in the pause and
    # straddles main's resumption. Main's speech is two IPUs; the overlap is not within.
    straddle = [J([(0.5, 2.0), (2.3, 4.0)]), J([(2.1, 2.5)])]
    st = analyze(_stereo(straddle, 5.0), SR)
    assert st.overlap_kind.tolist() == [BETWEEN] and len(st.gaps) == 1 and len(st.pauses) == 0
    # The same うん inside a 100 ms hole (main's IPU stays whole): within, no gap, no pause.
    inside = [J([(0.5, 2.0), (2.1, 4.0)]), J([(2.05, 2.45)])]
    st = analyze(_stereo(inside, 5.0), SR)
    assert st.overlap_kind.tolist() == [WITHIN] and len(st.gaps) == 0 and len(st.pauses) == 0
    assert len(st.fto) == 0


def test_simultaneous_start_of_a_short_unit_is_within():
    st = analyze(_stereo([[(0.5, 2.0)], [(0.5, 1.0)]], 3.0), SR)
    assert st.overlap_kind.tolist() == [WITHIN]
    assert len(st.fto) == 0 and len(st.gaps) == 0 and len(st.pauses) == 0


def test_hysteresis_keeps_soft_tails_and_drops_soft_blips_and_clicks():
    rng = np.random.default_rng(1)
    n = 4 * SR
    x = _burst(n, 0.503, 1.507, "tone", rng, SR, amp=0.3)
    x += _burst(n, 1.507, 1.806, "tone", rng, SR, amp=0.3 * 10 ** (-43 / 20))  # tail: between off and on
    x += _burst(n, 2.5, 2.8, "tone", rng, SR, amp=0.3 * 10 ** (-43 / 20))  # blip: never above on
    x += _burst(n, 3.2, 3.23, "tone", rng, SR, amp=0.3)  # 30 ms click
    x += rng.normal(0, 1e-4, n).astype(np.float32)
    act = detect_activity(np.stack([x, np.zeros(n, np.float32)]), SR)
    _close(act[0], [(0.503, 1.806)])
    assert len(act[1]) == 0  # digital silence


def test_noise_only_and_empty_input_give_no_events():
    st = analyze(_stereo([[], []], 5.0, noise_db=-30), SR)
    assert st.counts()["ipus"] == 0
    s = summarize([st])
    assert s["ipus_per_min"] == 0 and np.isnan(s["gap_median"]) and np.isnan(s["overlapped_share"])
    assert np.isnan(summarize([])["ipus_per_min"])
    assert analyze(np.zeros((2, 0), np.float32), SR).counts()["ipus"] == 0


def test_other_sample_rates_and_int16_give_the_same_events(planted):
    st = analyze(_stereo(DIALOGUE, 13.0, sr=16_000), 16_000)
    assert st.counts() == planted.counts()
    _close(st.fto, planted.fto.tolist())
    pcm = (_stereo(DIALOGUE, 13.0) * 32767).astype(np.int16)
    assert analyze(pcm, SR).counts() == planted.counts()


def test_louder_noise_floor_and_level_changes_still_recovered():
    audio = _stereo(DIALOGUE, 13.0, noise_db=-35.0, seed=3)
    audio[1] *= 0.1  # the other channel 20 dB quieter, noise included
    st = analyze(audio, SR)
    assert st.counts()["gaps"] == 2 and st.counts()["backchannel_ipus"] == 2
    _close(st.gaps, J([(2.0, 2.4), (7.5, 8.1)]))


def test_bad_shapes_are_clear_errors(tmp_path):
    with pytest.raises(JmoshiError, match="got mono"):
        analyze(np.zeros((1, 100), np.float32), SR)
    with pytest.raises(JmoshiError, match="transpose"):
        analyze(np.zeros((100, 2), np.float32), SR)
    with pytest.raises(JmoshiError, match=r"shaped \[2, samples\]"):
        analyze(np.zeros(100, np.float32), SR)
    mono = tmp_path / "mono.wav"
    sf.write(mono, np.zeros(SR, np.float32), SR)
    with pytest.raises(JmoshiError, match=r"mono\.wav: expected stereo .* got mono"):
        list(analyze_paths([mono]))
    three = tmp_path / "three.wav"
    sf.write(three, np.zeros((SR, 3), np.float32), SR)
    with pytest.raises(JmoshiError, match="got 3 channels"):
        list(analyze_paths([three]))
    junk = tmp_path / "junk.wav"
    junk.write_bytes(b"not a wav")
    with pytest.raises(JmoshiError, match="junk.wav: cannot read audio"):
        list(analyze_paths([junk]))
    with pytest.raises(JmoshiError, match="no such file or folder"):
        list(analyze_paths([tmp_path / "missing"]))
    with pytest.raises(JmoshiError, match="min_speech must not be negative"):
        VadOptions(min_speech=-1)


def test_paths_folders_and_manifests_stream_the_same_numbers(tmp_path, planted):
    audio = _stereo(DIALOGUE, 13.0)
    (tmp_path / "a" / "b").mkdir(parents=True)
    sf.write(tmp_path / "a" / "x.wav", audio.T, SR, subtype="PCM_16")
    sf.write(tmp_path / "a" / "b" / "y.wav", audio.T, SR, subtype="FLOAT")
    folder = list(analyze_paths([tmp_path / "a"]))
    assert [s.name for s in folder] == ["b/y.wav", "x.wav"]
    for s in folder:
        assert s.counts() == planted.counts()
        _close(s.fto, planted.fto.tolist(), tol=0.011)
        assert s.duration == pytest.approx(13.0)
    manifest = tmp_path / "a" / "data.jsonl"
    manifest.write_text('{"path": "x.wav", "duration": 13.0}\n\n{"path": "b/y.wav", "duration": 13.0}\n')
    assert [s.counts() for s in analyze_paths([manifest])] == [planted.counts()] * 2
    manifest.write_text('{"path": "x.wav", "duration": 13.0}\n{"path": 3}\n')
    with pytest.raises(JmoshiError, match=r"data\.jsonl:2: expected a JSON object"):
        list(analyze_paths([manifest]))
    manifest.write_text('{"path": "gone.wav", "duration": 1}\n')
    with pytest.raises(JmoshiError, match=r"data\.jsonl:1: listed audio file 'gone.wav' does not exist"):
        list(analyze_paths([manifest]))


def test_to_dict_round_trips(planted):
    back = DialogueStats.from_dict(json.loads(json.dumps(planted.to_dict())))
    assert back.counts() == planted.counts()
    _close(back.gaps, planted.gaps.tolist(), tol=0.001)
    assert summarize([back])["overlapped_share"] == summarize([planted])["overlapped_share"]
    with pytest.raises(JmoshiError, match="not a dialogue stats record"):
        DialogueStats.from_dict({"name": "x"})


def test_report_writes_tables_json_and_overlaid_plots(tmp_path, planted):
    quiet = analyze(_stereo([[(0.5, 3.0)], []], 4.0), SR, name="quiet")
    md = write_stats_files(tmp_path / "r", [planted], compare={"baseline": [quiet]}, title="T", name="synth")
    assert md == tmp_path / "r" / "stats.md"
    text = md.read_text()
    assert "| metric | synth | baseline | human reference |" in text
    assert "| IPUs / min | 41.5 | 15.0 | 45.8 |" in text
    assert "| overlapped speaker changes (between / (gaps + between)) | 50 % | – | 39 % |" in text
    import pandas as pd

    table = pd.read_csv(tmp_path / "r" / "stats.csv").set_index("metric")
    assert table.loc["gaps_per_min", "synth"] == pytest.approx(2 / (13 / 60))
    assert table.loc["gap_median", "human_reference"] == HUMAN_REFERENCE["gap_median"]
    doc = json.loads((tmp_path / "r" / "stats.json").read_text())
    assert doc["sets"]["baseline"]["summary"]["gap_median"] is None
    assert doc["sets"]["synth"]["dialogues"][0]["counts"]["backchannel_ipus"] == 2
    rows = pd.read_csv(tmp_path / "r" / "dialogues.csv")
    assert rows["set"].tolist() == ["synth", "baseline"] and rows["ipus"].tolist() == [9, 1]
    for png in ("fto.png", "durations.png"):
        assert (tmp_path / "r" / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert sorted(p.name for p in (tmp_path / "r").iterdir()) == [
        "dialogues.csv", "durations.png", "fto.png", "stats.csv", "stats.json", "stats.md"
    ]  # no temporary files left behind


def test_cli_prints_table_and_fails_cleanly(tmp_path):
    from typer.testing import CliRunner

    from jmoshi_augment.cli import app

    sf.write(tmp_path / "d.wav", _stereo(DIALOGUE, 13.0).T, SR)
    sf.write(tmp_path / "mono.wav", np.zeros(SR, np.float32), SR)
    ref = tmp_path / "ref"
    ref.mkdir()
    sf.write(ref / "q.wav", _stereo([[(0.5, 3.0)], []], 4.0).T, SR)
    result = CliRunner().invoke(app, ["stats", str(tmp_path / "d.wav"), "--compare", str(ref), "--out", str(tmp_path / "out")])
    assert result.exit_code == 0, result.output
    assert "human" in result.output and "IPUs / min" in result.output and "41.5" in result.output
    assert (tmp_path / "out" / "stats.json").is_file()
    proc = subprocess.run(
        [sys.executable, "-c", "from jmoshi_augment.cli import main; main()", "stats", str(tmp_path / "mono.wav")],
        capture_output=True, text=True,
    )
    assert proc.returncode == 2
    assert proc.stderr.strip() == f"error: {tmp_path / 'mono.wav'}: expected stereo audio (channel 0 = main, 1 = other), got mono"
