"""Our own overhead in the LLM rewrite stage: dialogues per second against the scripted fake
OpenAI-compatible server (tests/fake_openai.py, run in its own process), at concurrency 1 and 16,
with an instant server and with a simulated 50 ms model latency; plus a rerun served from the cache
and validation alone. The fake answers each dialogue with its own turns (a valid rewrite), so every
dialogue costs one request, one validation and one cache write.

    .venv/bin/python bench/rewrite_overhead.py [--n 300] [--corpus PATH]
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from fake_openai import FakeOpenAI, Reply, dialogue_of  # noqa: E402

from jmoshi_augment.augment.text.rewrite.llm import rewrite_dialogues  # noqa: E402
from jmoshi_augment.augment.text.rewrite.validate import validate_rewrite  # noqa: E402
from jmoshi_augment.corpora import Dialogue, Turn, load_corpus  # noqa: E402
from jmoshi_augment.recipe import RewriteConfig  # noqa: E402


def _echo(delay: float):
    def respond(body: dict[str, Any], n: int) -> Reply:
        doc = dialogue_of(body)
        return Reply(json.dumps({"turns": doc["turns"]}, ensure_ascii=False), delay=delay)

    return respond


def _serve(delay: float, conn: Any, stop: Any) -> None:
    with FakeOpenAI(_echo(delay)) as server:
        conn.send(server.port)
        stop.wait()


def _dialogues(corpus: Path, n: int) -> list[Dialogue]:
    """``n`` dialogues cycled from the sample, each made unique (a number in its first turn) so
    that no per-text cache inside the validator flatters the figures; personas do recur, as in the
    corpus (233 speakers for 13,583 dialogues)."""
    base = list(load_corpus("realpersonachat", corpus))
    out = []
    for i in range(n):
        d = base[i % len(base)]
        first = Turn(d.turns[0].speaker, f"{i}番です。{d.turns[0].text}")
        out.append(Dialogue(f"{d.id}-{i}", "bench", (first,) + d.turns[1:], d.meta))
    return out


def _run(dialogues: list[Dialogue], cfg: RewriteConfig, cache: Path) -> tuple[float, Any]:
    t0 = time.perf_counter()
    out, report = rewrite_dialogues(dialogues, cfg, cache)
    dt = time.perf_counter() - t0
    assert report.rewritten == len(dialogues), report.lines()
    return len(dialogues) / dt, report


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=300, help="dialogues per instant-server run")
    ap.add_argument("--corpus", type=Path, default=ROOT / "tests/fixtures/realpersonachat_real/real_persona_chat")
    args = ap.parse_args()
    dialogues = _dialogues(args.corpus, args.n)
    turns = sum(len(d.turns) for d in dialogues) / len(dialogues)
    print(f"{len(dialogues)} RealPersonaChat dialogues, {turns:.0f} turns each, with personas")

    ctx = mp.get_context("fork")
    rows = []
    for delay, n in ((0.0, args.n), (0.05, min(args.n, 100))):
        parent, child = ctx.Pipe()
        stop = ctx.Event()
        proc = ctx.Process(target=_serve, args=(delay, child, stop), daemon=True)
        proc.start()
        port = parent.recv()
        try:
            for conc in (1, 16):
                with tempfile.TemporaryDirectory() as tmp:
                    cfg = RewriteConfig(backend="llm", model="fake", base_url=f"http://127.0.0.1:{port}/v1", concurrency=conc)
                    rate, _ = _run(dialogues[:n], cfg, Path(tmp))
                    rows.append((f"server delay {delay * 1000:.0f} ms, concurrency {conc}", rate))
                    if delay == 0 and conc == 16:
                        rate, report = _run(dialogues[:n], cfg, Path(tmp))
                        assert report.cache_hits == n
                        rows.append(("rerun served from the cache", rate))
        finally:
            stop.set()
            proc.join(5)

    cfg = RewriteConfig(backend="llm", model="fake")
    answers = [json.dumps({"turns": [t.to_dict() for t in d.turns]}, ensure_ascii=False) for d in dialogues]
    t0 = time.perf_counter()
    for d, a in zip(dialogues, answers):
        assert validate_rewrite(d, a, cfg).ok
    rows.append(("validation alone", len(dialogues) / (time.perf_counter() - t0)))

    for name, rate in rows:
        print(f"{name:45s} {rate:8.1f} dialogues/s")


if __name__ == "__main__":
    main()
