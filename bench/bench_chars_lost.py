"""Characters lost by the spoken script, corpus-wide: the bundled sample and every corpus fixture.

For this checkout's script: source characters (augment/text/normalize.py's count), those not
spoken by reason, and the independent check (a sequence diff of the source against the words'
surfaces) of characters neither spoken nor counted, which must be 0.

Side by side with a baseline script (``--baseline REV``: augment/text/script.py at that git
revision, e.g. the commit before issue 17), on one like-for-like figure both can be measured by:
Latin letters and digits of the source that are in no word of the script (the old script rewrote
times, % and masks into other characters, so a full-character diff would not compare like with
like; letters and digits it kept in place or dropped).

    .venv/bin/python bench/bench_chars_lost.py --baseline 0d7e5db
"""

from __future__ import annotations

import argparse
import difflib
import importlib.util
import subprocess
import sys
import tempfile
import time
import unicodedata
from collections import Counter
from pathlib import Path

import numpy as np

from jmoshi_augment.augment.text.normalize import unaccounted
from jmoshi_augment.augment.text.script import make_script, source_characters
from jmoshi_augment.corpora import load_corpus
from jmoshi_augment.recipe import ScriptConfig

REPO = Path(__file__).resolve().parents[1]
FIX = REPO / "tests" / "fixtures"
CORPORA = [
    ("sample", "jsonl", REPO / "jmoshi_augment" / "data" / "sample.jsonl"),
    ("jsonl fixture", "jsonl", FIX / "jsonl" / "dialogues.jsonl"),
    ("jdaily fixture", "jdaily", FIX / "jdaily"),
    ("realpersonachat fixture", "realpersonachat", FIX / "realpersonachat"),
    ("jpersonachat fixture", "jpersonachat", FIX / "jpersonachat" / "japanese_persona_chat.xlsx"),
    ("jempathetic fixture", "jempathetic", FIX / "jempathetic" / "japanese_empathetic_dialogues.xlsx"),
]


def alnum_missing(source: str, surfaces: str) -> int:
    """ASCII letters and digits of the (NFKC) source found in no word surface, in order."""
    a = [c for c in unicodedata.normalize("NFKC", source) if c.isascii() and c.isalnum()]
    b = [c for c in unicodedata.normalize("NFKC", surfaces) if c.isascii() and c.isalnum()]
    sm = difflib.SequenceMatcher(None, a, b, autojunk=False)
    return len(a) - sum(block.size for block in sm.get_matching_blocks())


def load_baseline(rev: str):
    code = subprocess.run(["git", "show", f"{rev}:augment/text/script.py"], cwd=REPO, capture_output=True,
                          text=True, check=True).stdout
    path = Path(tempfile.mkdtemp()) / "baseline_script.py"
    path.write_text(code, encoding="utf-8")
    spec = importlib.util.spec_from_file_location("baseline_script", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules["baseline_script"] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


def mid_phrase(script) -> int:
    """Backchannel anchored where the phrase runs on: the next word of the partner's sentence is a
    particle, auxiliary or suffix, or a possibly-auxiliary verb after て/で (the same UniDic test
    for both scripts)."""
    segs: dict[int, list] = {}
    for s in script.speech:
        segs.setdefault(s.turn, []).append(s)
    n = 0
    for bc in script.backchannels:
        si, wi = bc.anchor
        words = segs[bc.turn][si].words
        if wi + 1 >= len(words):
            continue
        w, nxt = words[wi], words[wi + 1]
        te = w.surface in ("て", "で") and nxt.pos.startswith(("動詞-非自立", "形容詞-非自立"))
        n += te or nxt.pos.startswith(("助詞", "助動詞", "接尾辞"))
    return n


def measure(make, dialogues, cfg, accounted: bool) -> dict:
    out = Counter()
    reasons = Counter()
    t0 = time.perf_counter()
    for d in dialogues:
        script = make(d, cfg, np.random.default_rng(0))
        source = "".join(t.text for t in d.turns)
        surfaces = "".join(w.surface for s in script.speech for w in s.words if w.pos != "フィラー")
        counted = dict(getattr(script, "not_spoken", ()))
        reasons.update(counted)
        out["dialogues"] += 1
        out["backchannel"] += len(script.backchannels)
        out["backchannel_casual"] += sum(1 for b in script.backchannels if b.text in cfg.backchannels_casual
                                     and b.text not in cfg.backchannels_polite)
        out["backchannel_mid_phrase"] += mid_phrase(script)
        out["alnum"] += sum(1 for c in unicodedata.normalize("NFKC", source) if c.isascii() and c.isalnum())
        out["alnum_missing"] += alnum_missing(source, surfaces)
        if accounted:  # the baseline has no accounting
            out["source"] += source_characters(script)
            out["unaccounted"] += unaccounted(source, surfaces, sum(counted.values()))
    out["seconds"] = round(time.perf_counter() - t0, 2)
    return {"counts": dict(out), "reasons": dict(reasons)}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--baseline", help="git revision whose augment/text/script.py is the baseline")
    args = ap.parse_args()
    cfg = ScriptConfig()
    base = load_baseline(args.baseline) if args.baseline else None
    total, total_base, total_reasons = Counter(), Counter(), Counter()
    warm = list(load_corpus("jsonl", CORPORA[0][2]))[:2]  # tagger and front end loaded before timing
    for make in [make_script] + ([base.make_script] if base else []):
        measure(make, warm, cfg, False)
    for label, name, path in CORPORA:
        dialogues = list(load_corpus(name, path))
        ours = measure(make_script, dialogues, cfg, True)
        total.update(ours["counts"])
        total_reasons.update(ours["reasons"])
        line = f"{label:26s} {ours['counts']} not spoken: {ours['reasons']}"
        if base is not None:
            theirs = measure(base.make_script, dialogues, cfg, False)
            total_base.update(theirs["counts"])
            c = theirs["counts"]
            line += f" | baseline alnum_missing={c['alnum_missing']} backchannel={c['backchannel']} casual={c['backchannel_casual']} mid_phrase={c['backchannel_mid_phrase']}"
        print(line)
    print(f"TOTAL ours {dict(total)} not spoken: {dict(total_reasons)}")
    if base is not None:
        print(f"TOTAL baseline {dict(total_base)}")


if __name__ == "__main__":
    sys.exit(main())
