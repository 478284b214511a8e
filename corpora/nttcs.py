"""Japanese PersonaChat and Japanese EmpatheticDialogues (NTT), read from the xlsx workbooks.

Source: https://github.com/nttcslab/japanese-dialog-transformers (its README links the two
workbooks on Dropbox; the usage line of its ``scripts/extract_persona_chat.py`` names the PersonaChat
file ``ペルソナ対話1-5000.xlsx``, so we find a workbook by its sheets, never by its file name).
Paper: H. Sugiyama et al., "Empirical Analysis of Training Strategies of Transformer-based Japanese
Chit-chat Systems", IEEE SLT 2022 (arXiv:2109.05217).
Licence: NTT's "Dialogue model and data evaluation license agreement" (LICENSE.md in that
repository): evaluation and research use only, no redistribution. Nothing of it ships here.

Layout, as NTT's own ``scripts/extract_persona_chat.py`` / ``extract_ed.py`` read it: one row per
utterance on sheet ``対話``; consecutive rows with the same dialogue id form one dialogue;
PersonaChat's ``ペルソナリスト`` holds both speakers' persona sentences (newline-separated in one
cell), EmpatheticDialogues' ``状況文`` the emotion label and situation sentence of each dialogue.
"""

# The two workbooks (illustrative rows, not corpus text). Columns are read BY POSITION, as NTT's
# scripts do: ``[1:4]`` on PersonaChat's sheets (column A is a running number), ``[:3]`` on
# EmpatheticDialogues'. Header texts are not part of the contract; a header row is recognised by a
# first cell without digits (NTT skips rows whose first cell is ``No`` / ``ID``).
#   PersonaChat     sheet ペルソナリスト | No | PP1 | 私は札幌に住んでいます。\n… | 私は看護師です。\n…
#                   sheet 対話          | No | PP1 | A | こんにちは。最近寒くなりましたね。
#   Empathetic      sheet 状況文        | 1_1 | 感謝する | 引っ越しの日に友達が手伝いに来てくれた。
#                   sheet 対話          | 1_1 | A | この前の引っ越し、友達が手伝ってくれたんだ。

from __future__ import annotations

import logging
import re
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

from jmoshi_augment.corpora._common import clean_text
from jmoshi_augment.corpora.dialogue import Dialogue, Turn
from jmoshi_augment.corpora.registry import SkipCounts, register_corpus
from jmoshi_augment.errors import JmoshiError

logger = logging.getLogger(__name__)

DIALOGUE_SHEET = "対話"
PERSONA_SHEET = "ペルソナリスト"
SITUATION_SHEET = "状況文"


@dataclass(frozen=True)
class _Layout:
    """Where each field sits on one sheet (0-based column positions) and what to call it."""

    id: int
    fields: tuple[tuple[str, int], ...]  # (name used in messages, position)

    @property
    def width(self) -> int:
        return max([self.id, *(pos for _, pos in self.fields)]) + 1


@dataclass(frozen=True)
class _Workbook:
    """What tells the two NTT workbooks apart, how their sheets are laid out, what to call each."""

    corpus: str
    description: str  # how the user knows the file (NTT's README / usage line)
    info_sheet: str  # the sheet next to 対話 that only this corpus has
    dialogue: _Layout  # on 対話: id, speaker, utterance
    info: _Layout  # on the info sheet


PERSONA_CHAT = _Workbook(
    "jpersonachat",
    "the Japanese PersonaChat workbook (NTT names it ペルソナ対話1-5000.xlsx)",
    PERSONA_SHEET,
    _Layout(1, (("speaker", 2), ("utterance", 3))),
    _Layout(1, (("persona A", 2), ("persona B", 3))),
)
EMPATHETIC = _Workbook(
    "jempathetic",
    "the Japanese EmpatheticDialogues workbook (japanese_empathetic_dialogues.xlsx)",
    SITUATION_SHEET,
    _Layout(0, (("speaker", 1), ("utterance", 2))),
    _Layout(0, (("emotion", 1), ("situation", 2))),
)
_OTHER = {PERSONA_CHAT.corpus: EMPATHETIC, EMPATHETIC.corpus: PERSONA_CHAT}


@register_corpus(
    "jpersonachat",
    "Japanese PersonaChat (NTT): 5,000 persona chats, personas in meta",
    "the PersonaChat .xlsx (e.g. ペルソナ対話1-5000.xlsx) or the folder holding it",
)
def load_persona_chat(path: Path, skips: SkipCounts) -> Iterator[Dialogue]:
    xlsx = _resolve(path, PERSONA_CHAT)
    wb = _open(xlsx, PERSONA_CHAT)
    try:
        personas = _read_personas(wb[PERSONA_SHEET], xlsx)
        for dialogue_id, turns in _dialogues(wb[DIALOGUE_SHEET], xlsx, PERSONA_CHAT, skips):
            meta: dict[str, Any] = {"persona_id": dialogue_id}
            if dialogue_id in personas:
                meta["persona"] = personas[dialogue_id]
            else:
                logger.debug("%s: no persona row for %s", xlsx, dialogue_id)
            yield Dialogue(f"jpersonachat-{dialogue_id}", "jpersonachat", turns, meta)
    finally:
        wb.close()


@register_corpus(
    "jempathetic",
    "Japanese EmpatheticDialogues (NTT): ~20,000 four-turn chats, emotion + situation in meta",
    "the EmpatheticDialogues .xlsx (japanese_empathetic_dialogues.xlsx) or the folder holding it",
)
def load_empathetic(path: Path, skips: SkipCounts) -> Iterator[Dialogue]:
    xlsx = _resolve(path, EMPATHETIC)
    wb = _open(xlsx, EMPATHETIC)
    try:
        situations = _read_situations(wb[SITUATION_SHEET], xlsx)
        for dialogue_id, turns in _dialogues(wb[DIALOGUE_SHEET], xlsx, EMPATHETIC, skips):
            meta: dict[str, Any] = {"situation_id": dialogue_id, **situations.get(dialogue_id, {})}
            yield Dialogue(f"jempathetic-{dialogue_id}", "jempathetic", turns, meta)
    finally:
        wb.close()


def _sheet_names(path: Path) -> list[str] | None:
    """The workbook's sheet names, or None for a file that is not a readable workbook."""
    import openpyxl

    try:
        wb = openpyxl.load_workbook(path, read_only=True)
    except Exception:  # noqa: BLE001 - any unreadable file simply is not a candidate
        return None
    try:
        return list(wb.sheetnames)
    finally:
        wb.close()


def _resolve(path: Path, kind: _Workbook) -> Path:
    """A folder resolves to the one workbook in it with this corpus's sheets, whatever its name
    (NTT's own usage line calls the PersonaChat file ``ペルソナ対話1-5000.xlsx``)."""
    if not path.is_dir():
        return path
    # "~$name.xlsx" is Excel's lock file for an open workbook, not a workbook.
    files = sorted(p for p in path.glob("*.xlsx") if p.is_file() and not p.name.startswith(("~$", ".")))
    sheets = {p: _sheet_names(p) for p in files}
    matches = [p for p, names in sheets.items() if names and {DIALOGUE_SHEET, kind.info_sheet} <= set(names)]
    if len(matches) == 1:
        return matches[0]
    if len(matches) > 1:
        raise JmoshiError(
            f"several workbooks have the sheets {DIALOGUE_SHEET!r} and {kind.info_sheet!r} "
            f"({', '.join(p.name for p in matches)}); pass the file itself",
            path=path,
        )
    other = _OTHER[kind.corpus]
    hint = ""
    if any(names and other.info_sheet in names for names in sheets.values()):
        hint = f"; the workbook here looks like {other.description}: use corpus {other.corpus!r}"
    found = f"{len(files)} .xlsx file(s) without them" if files else "no .xlsx file"
    raise JmoshiError(
        f"no workbook with sheets {DIALOGUE_SHEET!r} and {kind.info_sheet!r} in this folder ({found}); "
        f"expected {kind.description}{hint}",
        path=path,
    )


def _open(path: Path, kind: _Workbook):
    # Imported here: only the NTT corpora need it.
    import openpyxl
    from openpyxl.utils.exceptions import InvalidFileException

    try:
        # read_only streams rows from the zip instead of building all 80k cells in memory.
        wb = openpyxl.load_workbook(path, read_only=True, data_only=True)
    except (zipfile.BadZipFile, InvalidFileException, KeyError, OSError) as e:
        raise JmoshiError(f"not a readable .xlsx workbook ({e}); expected {kind.description}", path=path) from None
    sheets = list(wb.sheetnames)
    missing = [s for s in (DIALOGUE_SHEET, kind.info_sheet) if s not in sheets]
    if missing:
        wb.close()
        other = _OTHER[kind.corpus]
        hint = ""
        if other.info_sheet in sheets:
            hint = f"; this looks like {other.description}: use corpus {other.corpus!r}"
        raise JmoshiError(
            f"no sheet {missing[0]!r} (sheets: {', '.join(sheets)}): not {kind.description}{hint}", path=path
        )
    return wb


_DIGIT = re.compile(r"\d")


def _is_header(values: tuple, layout: _Layout) -> bool:
    """A header row names its columns in text without digits (``No``, ``ID``, ``作業No``); every data
    row starts with a running number or a dialogue id (``1``, ``PP1``, ``1_1``), which all hold one.
    The first cell and the id column decide (a header may leave its ``No`` cell empty)."""
    cells = [values[i] for i in sorted({0, layout.id}) if i < len(values) and values[i] is not None
             and str(values[i]).strip()]
    return bool(cells) and all(isinstance(c, str) and not _DIGIT.search(c) for c in cells)


def _rows(ws, path: Path, layout: _Layout, skips: SkipCounts) -> Iterator[tuple[int, tuple, dict[int, str]]]:
    """(1-based row number as Excel shows it, cell values, header texts by position) for every data
    row. Rows with no value at all are skipped (openpyxl yields trailing formatted-but-empty rows),
    and so are header rows, wherever they repeat (as NTT's scripts skip every ``No`` row)."""
    header: dict[int, str] = {}
    seen_data = False
    for number, values in enumerate(ws.iter_rows(min_row=1, values_only=True), start=1):
        if not any(v is not None and (not isinstance(v, str) or v.strip()) for v in values):
            continue
        if _is_header(values, layout):
            if seen_data:
                skips.skip("repeated header row", f"{path.name} sheet {ws.title} row {number}")
            else:
                header = {i: str(v).strip() for i, v in enumerate(values) if v is not None and str(v).strip()}
            continue
        seen_data = True
        if len(values) < layout.width:
            raise JmoshiError(
                f"sheet {ws.title!r}: {len(values)} column(s), but this layout needs {layout.width} "
                f"({_layout_text(layout)})",
                path=path,
                line=number,
            )
        yield number, values, header


def _layout_text(layout: _Layout) -> str:
    names = {layout.id: "dialogue id", **{pos: name for name, pos in layout.fields}}
    return " | ".join(names.get(i, "No") for i in range(layout.width))


def _key(header: dict[int, str], position: int, name: str) -> str:
    """How an error names a column: the sheet's own header text when it has one (headers are only
    hints for us, but they are what the user sees in Excel), else the column letter."""
    letter = chr(ord("A") + position)
    text = header.get(position)
    return f"column {letter} ({text})" if text else f"column {letter} ({name})"


def _id_text(value: Any, *, path: Path, row: int, sheet: str, key: str) -> str:
    if value is None or (isinstance(value, str) and not value.strip()):
        raise JmoshiError(f"sheet {sheet!r}: missing dialogue id", path=path, line=row, key=key)
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        raise JmoshiError(
            f"sheet {sheet!r}: dialogue id must be text like 'PP1' or '1_1', got {value!r}",
            path=path,
            line=row,
            key=key,
        )
    return str(value).strip()


def _utterance_text(value: Any, *, path: Path, row: int, key: str) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        return clean_text(value)
    # Excel stores a cell typed as "100" or "3.5" as a number; it is still the utterance.
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    if isinstance(value, float):
        return str(int(value)) if value.is_integer() else repr(value)
    raise JmoshiError(f"sheet {DIALOGUE_SHEET!r}: utterance must be text, got {value!r}", path=path, line=row, key=key)


def _dialogues(ws, path: Path, kind: _Workbook, skips: SkipCounts) -> Iterator[tuple[str, tuple[Turn, ...]]]:
    """Group consecutive 対話 rows by dialogue id, lazily."""
    layout = kind.dialogue
    (_, c_speaker), (_, c_text) = layout.fields
    finished: set[str] = set()
    current: str | None = None
    turns: list[Turn] = []

    def flush() -> Iterator[tuple[str, tuple[Turn, ...]]]:
        if current is None:
            return
        finished.add(current)
        if turns:
            yield current, tuple(turns)
        else:
            skips.skip("dialogue without any non-empty turn", f"{path.name} {kind.corpus}-{current}")

    for row, values, header in _rows(ws, path, layout, skips):
        id_key = _key(header, layout.id, "dialogue id")
        dialogue_id = _id_text(values[layout.id], path=path, row=row, sheet=ws.title, key=id_key)
        if dialogue_id != current:
            yield from flush()
            if dialogue_id in finished:
                raise JmoshiError(
                    f"sheet {ws.title!r}: rows of dialogue {dialogue_id!r} are not consecutive "
                    "(it appeared earlier); sort the sheet by dialogue",
                    path=path,
                    line=row,
                    key=id_key,
                )
            current, turns = dialogue_id, []
        text = _utterance_text(values[c_text], path=path, row=row, key=_key(header, c_text, "utterance"))
        if not text:
            skips.skip("empty text", f"{path.name} row {row}")
            continue
        speaker = values[c_speaker]
        if not isinstance(speaker, str) or not speaker.strip():
            raise JmoshiError(
                f"sheet {ws.title!r}: speaker must be 'A' or 'B', got {speaker!r}",
                path=path,
                line=row,
                key=_key(header, c_speaker, "speaker"),
            )
        turns.append(Turn(speaker.strip(), text))
    yield from flush()


def _read_personas(ws, path: Path) -> dict[str, dict[str, list[str]]]:
    """Persona-pair id → {"A": [sentences], "B": [sentences]}."""
    layout = PERSONA_CHAT.info
    (_, c_a), (_, c_b) = layout.fields
    personas: dict[str, dict[str, list[str]]] = {}
    for row, values, header in _rows(ws, path, layout, SkipCounts()):
        pid = _id_text(values[layout.id], path=path, row=row, sheet=ws.title, key=_key(header, layout.id, "persona id"))
        personas[pid] = {"A": _persona_sentences(values[c_a]), "B": _persona_sentences(values[c_b])}
    return personas


def _persona_sentences(cell: Any) -> list[str]:
    if cell is None:
        return []
    return [s.strip() for s in str(cell).splitlines() if s.strip()]


def _read_situations(ws, path: Path) -> dict[str, dict[str, str]]:
    """Dialogue id → {"emotion", "situation"}; NTT's script reads ``[:3]`` with or without a header."""
    layout = EMPATHETIC.info
    (_, c_emotion), (_, c_situation) = layout.fields
    situations: dict[str, dict[str, str]] = {}
    for row, values, header in _rows(ws, path, layout, SkipCounts()):
        sid = _id_text(values[layout.id], path=path, row=row, sheet=ws.title, key=_key(header, layout.id, "dialogue id"))
        emotion, situation = values[c_emotion], values[c_situation]
        entry = {}
        if emotion is not None and str(emotion).strip():
            entry["emotion"] = str(emotion).strip()
        if situation is not None and str(situation).strip():
            entry["situation"] = clean_text(str(situation))
        situations[sid] = entry
    return situations
