"""report.html at scale: build time, and what the browser does, paged vs one page, side by side.

A large output folder is made from a real sample run by repeating its unit records under new ids
(wav and alignment files are hard links, so the report reads real files). Then, in one run:
  1. ``write_html_report`` on N dialogues (reads every unit record, wav header and alignment file);
  2. headless Chromium opening the page from disk: time to the first list drawn, time to open one
     dialogue (timeline + player), time for a filter over all N rows; once with the default paging
     (500-row list pages, 50-dialogue detail files) and once with everything in one page/one file.

    .venv/bin/jmoshi-augment synth recipes/sample.yaml --out /tmp/report_run   # the source run
    .venv/bin/python bench/report_scale.py --run /tmp/report_run --dialogues 10000
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path


def replicate(src: Path, dst: Path, n: int, unit_size: int = 100) -> None:
    """``dst`` with ``n`` renderings cycling through ``src``'s, under new ids."""
    entries = [e for p in sorted((src / "units").glob("unit-*.json"))
               for e in json.loads(p.read_text(encoding="utf-8"))["renderings"]]
    for name in ("recipe.yaml", "recipe.json", "models.json", "report.json"):
        shutil.copy(src / name, dst / name)
    (dst / "units").mkdir()
    (dst / "audio").mkdir()
    for u in range(0, n, unit_size):
        out = []
        for i in range(u, min(n, u + unit_size)):
            e = dict(entries[i % len(entries)])
            rid = f"{e['id']}-{i:06d}"
            for ext in (".wav", ".json"):
                os.link(src / "audio" / f"{e['id']}{ext}", dst / "audio" / f"{rid}{ext}")
            e.update(id=rid, dialogue_id=f"{e['dialogue_id']}-{i:06d}")
            out.append(e)
        record = {"unit": u // unit_size, "dialogues": [e["dialogue_id"] for e in out], "renderings": out,
                  "rejected": {}, "skips": {}, "seconds": {}}
        (dst / "units" / f"unit-{u // unit_size:05d}.json").write_text(json.dumps(record, ensure_ascii=False))


async def browse(page: Path, target: str) -> dict[str, float]:
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
    from test_report import Browser, chromium_path

    async with Browser(chromium_path()) as b:
        await b.send("Page.enable")
        await b.send("Page.navigate", url=page.as_uri())
        await b.until("window.JMR && JMR.state.readyAt", timeout=120)
        first = await b.js("JMR.state.readyAt")
        rows = await b.js("document.querySelectorAll('#list tbody tr').length")
        open_ms = await b.js(f"""(async () => {{ const t0 = performance.now();
            const row = [...JMR.state.pages.values()].flat().find(r => r.id === {json.dumps(target)});
            await JMR.select(row); return performance.now() - t0; }})()""")
        words = await b.js("document.querySelectorAll('#lane-0 .word, #lane-1 .word').length")
        filter_ms = await b.js("""(async () => { const t0 = performance.now();
            document.getElementById('f-warnings').checked = true; await JMR.refresh();
            return performance.now() - t0; })()""")
        return {"first_list_ms": first, "rows_drawn": rows, "open_dialogue_ms": open_ms, "words": words,
                "filter_all_ms": filter_ms}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--run", type=Path, required=True, help="a finished synth output folder")
    ap.add_argument("--dialogues", type=int, default=10000)
    args = ap.parse_args()

    from jmoshi_augment.augment.report.build import write_html_report

    with tempfile.TemporaryDirectory(dir=args.run.parent) as tmp:
        big = Path(tmp) / "big"
        big.mkdir()
        replicate(args.run, big, args.dialogues)
        results = {}
        for label, kw in (("paged (500 rows / 50 details)", {}),
                          ("one page, one detail file", {"page_size": args.dialogues, "detail_chunk": args.dialogues})):
            t0 = time.perf_counter()
            path = write_html_report(big, **kw)
            build = time.perf_counter() - t0
            data = sum(p.stat().st_size for p in (big / "report_data").iterdir())
            # the first dialogue on the first page: what a person clicks first
            target = json.loads((big / "units" / "unit-00000.json").read_text(encoding="utf-8"))["renderings"][0]["id"]
            results[label] = {"build_s": round(build, 2), "html_kb": round(path.stat().st_size / 1024, 1),
                              "data_mb": round(data / 2**20, 1),
                              "files": len(list((big / "report_data").iterdir())),
                              **{k: round(v, 1) for k, v in asyncio.run(browse(path, target)).items()}}
            print(label, results[label], flush=True)
        print(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
