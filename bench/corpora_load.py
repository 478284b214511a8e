"""How fast the corpus loaders read full-size corpora, how soon the first dialogue arrives, and
what memory they hold, next to the pandas ``read_excel`` route many scripts for the NTT workbooks
take.

The corpora themselves are licensed and not here, so the script writes synthetic files of the
published sizes and layouts (PersonaChat: 5,000 dialogues / 61,793 utterance rows; Daily Dialogue:
5 topic files, 5,256 dialogues, 8 turns; RealPersonaChat: 13,583 files of 30 utterances) into
bench/out/corpora/ (re-used across runs), then measures each variant in a fresh subprocess so peak
RSS belongs to that variant alone.

    python bench/corpora_load.py
"""

from __future__ import annotations

import json
import resource
import subprocess
import sys
import time
from pathlib import Path

OUT = Path(__file__).parent / "out" / "corpora"
UTTERANCE = "最近は週末に近所の公園を散歩するのが楽しみなんです。あなたはどうですか？"


def make_persona_chat(path: Path) -> None:
    import openpyxl

    # A normal (not write-only) workbook, like one Excel saves: shared strings and a <dimension>
    # element. Write-only workbooks have neither, and openpyxl then scans each sheet once to size it.
    wb = openpyxl.Workbook()
    wb.remove(wb.active)
    personas = wb.create_sheet("ペルソナリスト")
    personas.append(["No", "ペルソナID", "A", "B"])
    dialogues = wb.create_sheet("対話")
    dialogues.append(["No", "ペルソナID", "話者", "発話"])
    rows = 0
    for i in range(1, 5001):
        personas.append([i, f"PP{i}", "私は会社員です。\n私は猫を飼っています。", "私は学生です。\n私は料理が好きです。"])
        n = 13 if i <= 1793 else 12  # 61,793 rows in all, as published
        for j in range(n):
            dialogues.append([i, f"PP{i}", "AB"[j % 2], UTTERANCE])
        rows += n
    assert rows == 61_793, rows
    wb.save(path)


def make_daily(folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    sizes = [1070, 1058, 1021, 1061, 1046]  # 5,256 dialogues
    for topic, size in enumerate(sizes, start=1):
        records = [
            {"topic_id": topic, "topic_name": "Dailylife", "dialogue_id": d, "dialogue_length": 8,
             "utterances": [{"turn_num": t + 1, "speaker": "AB"[t % 2], "utterance": UTTERANCE} for t in range(8)]}
            for d in range(1, size + 1)
        ]
        (folder / f"topic{topic}.json").write_text(json.dumps(records, ensure_ascii=False, indent=4), encoding="utf-8")


def make_real_persona_chat(root: Path) -> None:
    (root / "dialogues").mkdir(parents=True, exist_ok=True)
    ids = [f"A{chr(65 + i % 26)}{i // 26}" for i in range(233)]
    people = {i: {"interlocutor_id": i, "persona": ["私は旅行が好きだ。"] * 10, "personality": {"IOS": 4}} for i in ids}
    (root / "interlocutors.json").write_text(json.dumps(people, ensure_ascii=False, indent=4), encoding="utf-8")
    for n in range(1, 13_584):
        a, b = ids[n % 233], ids[(n * 7 + 1) % 233]
        record = {"dialogue_id": n, "interlocutors": [a, b],
                  "utterances": [{"utterance_id": u, "interlocutor_id": (a, b)[u % 2], "text": f"{UTTERANCE}{n}",
                                  "timestamp": "2022-08-06T14:51:18.360000"} for u in range(30)],
                  "evaluations": []}
        (root / "dialogues" / f"{n:05d}.json").write_text(json.dumps(record, ensure_ascii=False, indent=4), encoding="utf-8")


def measure(variant: str, path: str) -> dict:
    t0 = time.perf_counter()
    if variant == "pandas":
        import pandas as pd

        sheets = pd.read_excel(path, sheet_name=None)
        first_s = time.perf_counter() - t0  # nothing is usable before the whole workbook is parsed
        n = sheets["対話"]["ペルソナID"].nunique()
    else:
        from jmoshi_augment.corpora import load_corpus

        dialogues = load_corpus(variant, path)
        next(dialogues)
        first_s = time.perf_counter() - t0
        n = 1 + sum(1 for _ in dialogues)
    total_s = time.perf_counter() - t0
    usage = resource.getrusage(resource.RUSAGE_SELF)
    cpu_s = usage.ru_utime + usage.ru_stime  # the machine is shared: CPU time is the steadier figure
    return {"variant": variant, "dialogues": n, "first_s": round(first_s, 3), "total_s": round(total_s, 2),
            "cpu_s": round(cpu_s, 2), "dialogues_per_cpu_s": round(n / cpu_s), "peak_rss_mib": _peak_rss_mib()}


def _peak_rss_mib() -> int:
    # VmHWM belongs to this process image; ru_maxrss would carry the parent's peak across exec.
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return round(int(line.split()[1]) / 1024)
    return -1


def main() -> None:
    if len(sys.argv) == 4 and sys.argv[1] == "--measure":
        print(json.dumps(measure(sys.argv[2], sys.argv[3])))
        return
    OUT.mkdir(parents=True, exist_ok=True)
    xlsx = OUT / "persona_chat_shared_strings" / "japanese_persona_chat.xlsx"
    xlsx.parent.mkdir(exist_ok=True)
    if not xlsx.exists():
        make_persona_chat(xlsx)
    if not (OUT / "jdaily" / "topic5.json").exists():
        make_daily(OUT / "jdaily")
    if not (OUT / "real_persona_chat" / "dialogues" / "13583.json").exists():
        make_real_persona_chat(OUT / "real_persona_chat")
    runs = [("jpersonachat", xlsx), ("pandas", xlsx), ("jdaily", OUT / "jdaily"),
            ("realpersonachat", OUT / "real_persona_chat")]
    for variant, path in runs:
        out = subprocess.run([sys.executable, __file__, "--measure", variant, str(path)], capture_output=True, text=True, check=True)
        print(out.stdout.strip())


if __name__ == "__main__":
    main()
