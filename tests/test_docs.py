"""The repository's documentation stands on its own: every relative link in README.md and docs/
points at a file of the repository, and no file cites design notes that live outside it."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = sorted((ROOT / "docs").glob("*.md"))
# Written in two parts so that this file does not match itself.
OUTSIDE = [re.compile(re.escape("DESIGN" + ".md")), re.compile(re.escape("../" + "shared")), re.compile(r"shared/" + "notes")]
SCANNED = ["README.md", "docs", "recipes", "augment", "corpora", "runtime", "jmoshi_augment", "bench", "tests"]
TEXT = {".py", ".md", ".yaml", ".yml", ".txt", ".html", ".js", ".css", ".sh", ".toml"}


def _text_files():
    for name in SCANNED:
        path = ROOT / name
        files = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file())
        for f in files:
            if f.suffix in TEXT and "__pycache__" not in f.parts and not any(p.startswith(".") for p in f.relative_to(ROOT).parts):
                yield f


def test_the_docs_exist():
    assert {p.name for p in DOCS} >= {"method.md", "turn-taking.md", "formats.md"}


def test_nothing_cites_files_outside_the_repository():
    hits = [f"{f.relative_to(ROOT)}:{n}" for f in _text_files()
            for n, line in enumerate(f.read_text(encoding="utf-8", errors="replace").splitlines(), 1)
            if any(p.search(line) for p in OUTSIDE)]
    assert not hits


@pytest.mark.parametrize("page", [ROOT / "README.md", *DOCS], ids=lambda p: p.name)
def test_relative_links_resolve(page: Path):
    text = page.read_text(encoding="utf-8")
    targets = re.findall(r"\]\(([^)\s]+)\)", text)
    broken = []
    for target in targets:
        if re.match(r"[a-z]+://", target) or target.startswith(("#", "mailto:")):
            continue
        file_part = target.split("#", 1)[0]
        if not (page.parent / file_part).exists():
            broken.append(target)
    assert not broken, f"{page.name}: {broken}"
