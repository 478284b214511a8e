"""The planner on synthetic segment durations: rates, placement rules, determinism."""

import numpy as np

from jmoshi_augment.augment.speech.mix import mix
from jmoshi_augment.augment.text.script import make_script
from jmoshi_augment.augment.speech.timing import BACKCHANNEL_CLEARANCE, MIN_PAUSE, plan_timeline
from jmoshi_augment.augment.types import MAIN, OTHER, SAMPLE_RATE, RenderedSegment, WordTiming
from jmoshi_augment.constants import MIX_PEAK_LIMIT
from jmoshi_augment.corpora import Dialogue, Turn
from jmoshi_augment.recipe import ScriptConfig, TimingConfig

MORA = 0.125  # 8 morae per second (CEJC)


def fake_render(script):
    """Each word lasts its morae at 8 morae/s; audio is a constant tone (deterministic)."""
    out = []
    for seg in script.segments:
        t, words = 0.0, []
        for w in seg.words:
            words.append(WordTiming(w.surface, t, t + w.morae * MORA))
            t += w.morae * MORA
        n = int(round(t * SAMPLE_RATE))
        audio = (0.1 * np.sin(np.arange(n) * 2 * np.pi * 220 / SAMPLE_RATE)).astype(np.float32)
        out.append(RenderedSegment(audio, tuple(words)))
    return out


def scripts(n=40, seed=0):
    turn_a = "昨日ね、駅前の新しいカフェに行ったんだけど、すごく混んでてさ。結局一時間も待ったよ。"
    turn_b = "えー、そんなに？でも美味しかったんでしょ。今度一緒に行こうよ。"
    d = Dialogue("d", "test", tuple(Turn("AB"[i % 2], (turn_a, turn_b)[i % 2]) for i in range(8)))
    rng = np.random.default_rng(seed)
    return [make_script(d, ScriptConfig(), rng) for _ in range(n)]


def test_transitions_follow_the_configured_rates():
    cfg = TimingConfig(overlap_prob=0.3, interruption_prob=0.05)
    counts = {"overlaps": 0, "gaps": 0, "interruptions": 0, "speaker_changes": 0}
    rng = np.random.default_rng(0)
    for script in scripts():
        tl = plan_timeline(script, fake_render(script), cfg, "A", rng)
        for k in counts:
            counts[k] += tl.events.get(k, 0)
    n = counts["speaker_changes"]
    assert n == 40 * 7
    assert abs(counts["overlaps"] / n - 0.3) < 0.08
    assert abs(counts["interruptions"] / n - 0.05) < 0.04
    assert counts["overlaps"] + counts["gaps"] + counts["interruptions"] == n


def test_placements_respect_channels_pauses_and_backchannel_rules():
    cfg = TimingConfig()
    rng = np.random.default_rng(1)
    n_bc = 0
    for script in scripts(10):
        rendered = fake_render(script)
        tl = plan_timeline(script, rendered, cfg, "B", rng)
        spans = {MAIN: [], OTHER: []}
        for p in tl.placements:
            seg = script.segments[p.segment]
            assert p.channel == (MAIN if seg.speaker == "B" else OTHER)
            spans[p.channel].append((p.offset, p.offset + rendered[p.segment].duration))
        for ch in spans:  # a channel never overlaps itself; sentences are separate IPUs
            s = sorted(spans[ch])
            assert all(b[0] - a[1] >= min(MIN_PAUSE, BACKCHANNEL_CLEARANCE) - 1e-9 for a, b in zip(s, s[1:]))
        start = {p.segment: p.offset for p in tl.placements}
        for p in tl.placements:
            seg = script.segments[p.segment]
            if seg.kind != "backchannel":
                continue
            n_bc += 1
            host = next(i for i, s in enumerate(script.segments)
                        if s.kind == "speech" and (s.turn, s.sentence) == (seg.turn, seg.anchor[0]))
            anchor_end = start[host] + rendered[host].words[seg.anchor[1]].end
            assert anchor_end < p.offset <= anchor_end + cfg.backchannel_delay_max + 1e-9
        assert tl.events.get("backchannels", 0) == sum(1 for p in tl.placements if script.segments[p.segment].kind == "backchannel")
        assert tl.duration >= max(e for s in spans.values() for _, e in s) + cfg.tail - 1e-9
    assert n_bc > 0


def test_planner_is_deterministic_for_a_seed():
    script = scripts(1)[0]
    rendered = fake_render(script)
    a = plan_timeline(script, rendered, TimingConfig(), "A", np.random.default_rng(5))
    b = plan_timeline(script, rendered, TimingConfig(), "A", np.random.default_rng(5))
    assert a == b


def test_mix_places_words_and_never_clips():
    script = scripts(1)[0]
    rendered = fake_render(script)
    tl = plan_timeline(script, rendered, TimingConfig(overlap_prob=0.9), "A", np.random.default_rng(2))
    out = mix(script, rendered, tl, loudness_dbfs=-3.0)  # loud target: the peak limiter must act
    assert out.audio.shape == (2, int(round(tl.duration * SAMPLE_RATE))) and out.audio.dtype == np.float32
    assert np.abs(out.audio).max() <= MIX_PEAK_LIMIT + 1e-6
    assert out.speaker_map == {"main": "A", "other": "B"}
    assert [w.start for w in out.words] == sorted(w.start for w in out.words)
    for w in out.words:  # every aligned word sits on sound in its own channel
        a, b = int(w.start * SAMPLE_RATE), int(w.end * SAMPLE_RATE)
        assert np.abs(out.audio[w.channel, a:b]).max() > 0.01
    both = (np.abs(out.audio) > 1e-4).all(axis=0).mean()
    assert both > 0.02  # overlaps happened
