"""Japanese PersonaChat and Japanese EmpatheticDialogues (NTT), read from the xlsx workbooks.

Source: https://github.com/nttcslab/japanese-dialog-transformers (its README links the two
workbooks, ``japanese_persona_chat.xlsx`` and ``japanese_empathetic_dialogues.xlsx``, on Dropbox).
Paper: H. Sugiyama et al., "Empirical Analysis of Training Strategies of Transformer-based Japanese
Chit-chat Systems", IEEE SLT 2022 (arXiv:2109.05217).
Licence: NTT's "Dialogue model and data evaluation license agreement" (LICENSE.md in that
repository): evaluation and research use only, no redistribution. Nothing of it ships here.

Layout, as NTT's own ``scripts/extract_persona_chat.py`` / ``extract_ed.py`` read it: one row per
utterance on sheet ``対話``; consecutive rows with the same dialogue id form one dialogue;
PersonaChat's ``ペルソナリスト`` holds both speakers' persona sentences (newline-separated in one
cell), EmpatheticDialogues' ``状況文`` the emotion label and situation sentence of each dialogue.
"""

# japanese_persona_chat.xlsx (illustrative rows, not corpus text)
#   sheet ペルソナリスト  | No | ペルソナID | A                                  | B
#                        | 1  | PP1       | 私は札幌に住んでいます。\n私は猫を飼っています。 | 私は看護師です。\n…
#   sheet 対話           | No | ペルソナID | 話者 | 発話
#                        | 1  | PP1       | A    | こんにちは。最近寒くなりましたね。
# japanese_empathetic_dialogues.xlsx
#   sheet 状況文         | 作業No | 感情     | 状況文
#                        | 1_1    | 感謝する | 引っ越しの日に友達が手伝いに来てくれた。
#   sheet 対話           | ID  | 話者 | 発話
#                        | 1_1 | A    | この前の引っ越し、友達が手伝ってくれたんだ。

from __future__ import annotations

import logging
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

from jmoshi_augment.corpora._common import clean_text
from jmoshi_augment.corpora.dialogue import Dialogue, Turn
from jmoshi_augment.corpora.registry import LoadReport, register_corpus
from jmoshi_augment.errors import JmoshiError

logger = logging.getLogger(__name__)

DIALOGUE_SHEET = "対話"
PERSONA_SHEET = "ペルソナリスト"
SITUATION_SHEET = "状況文"


@dataclass(frozen=True)
class _Workbook:
    """What tells the two NTT workbooks apart, and what to call each."""

    corpus: str
    file_name: str
    info_sheet: str  # the sheet next to 対話 that only this corpus has
    id_column: str  # header of the dialogue-id column on 対話


PERSONA_CHAT = _Workbook("jpersonachat", "japanese_persona_chat.xlsx", PERSONA_SHEET, "ペルソナID")
EMPATHETIC = _Workbook("jempathetic", "japanese_empathetic_dialogues.xlsx", SITUATION_SHEET, "ID")
_OTHER = {PERSONA_CHAT.corpus: EMPATHETIC, EMPATHETIC.corpus: PERSONA_CHAT}


@register_corpus(
    "jpersonachat",
    "Japanese PersonaChat (NTT): 5,000 persona chats, personas in meta",
    "japanese_persona_chat.xlsx (or the folder holding it)",
)
def load_persona_chat(path: Path, report: LoadReport) -> Iterator[Dialogue]:
    xlsx = _resolve(path, PERSONA_CHAT)
    wb = _open(xlsx, PERSONA_CHAT)
    try:
        personas = _read_personas(wb[PERSONA_SHEET], xlsx)
        for dialogue_id, turns in _dialogues(wb[DIALOGUE_SHEET], xlsx, PERSONA_CHAT, report):
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
    "japanese_empathetic_dialogues.xlsx (or the folder holding it)",
)
def load_empathetic(path: Path, report: LoadReport) -> Iterator[Dialogue]:
    xlsx = _resolve(path, EMPATHETIC)
    wb = _open(xlsx, EMPATHETIC)
    try:
        situations = _read_situations(wb[SITUATION_SHEET], xlsx)
        for dialogue_id, turns in _dialogues(wb[DIALOGUE_SHEET], xlsx, EMPATHETIC, report):
            meta: dict[str, Any] = {"situation_id": dialogue_id, **situations.get(dialogue_id, {})}
            yield Dialogue(f"jempathetic-{dialogue_id}", "jempathetic", turns, meta)
    finally:
        wb.close()


def _resolve(path: Path, kind: _Workbook) -> Path:
    if path.is_dir():
        candidate = path / kind.file_name
        if not candidate.is_file():
            raise JmoshiError(f"no {kind.file_name} in this folder", path=path)
        return candidate
    return path


def _open(path: Path, kind: _Workbook):
    # Imported here: only the NTT corpora need it.
    import openpyxl
    from openpyxl.utils.exceptions import InvalidFileException

    try:
        # read_only streams rows from the zip instead of building all 80k cells in memory.
        wb = openpyxl.load_workbook(path, read_only=True, data_only=True)
    except (zipfile.BadZipFile, InvalidFileException, KeyError, OSError) as e:
        raise JmoshiError(f"not a readable .xlsx workbook ({e}); expected {kind.file_name}", path=path) from None
    sheets = list(wb.sheetnames)
    missing = [s for s in (DIALOGUE_SHEET, kind.info_sheet) if s not in sheets]
    if missing:
        wb.close()
        other = _OTHER[kind.corpus]
        hint = ""
        if other.info_sheet in sheets:
            hint = f"; this looks like {other.file_name}: use corpus {other.corpus!r}"
        raise JmoshiError(
            f"no sheet {missing[0]!r} (sheets: {', '.join(sheets)}): not {kind.file_name}{hint}", path=path
        )
    return wb


def _rows(ws) -> Iterator[tuple[int, tuple]]:
    """(1-based row number as Excel shows it, cell values), skipping rows with no value at all
    (openpyxl yields trailing formatted-but-empty rows)."""
    for number, values in enumerate(ws.iter_rows(min_row=1, values_only=True), start=1):
        if any(v is not None and (not isinstance(v, str) or v.strip()) for v in values):
            yield number, values


def _header(
    ws, path: Path, required: tuple[str, ...], first: str
) -> tuple[dict[str, int], Iterator[tuple[int, tuple]]]:
    """Column positions by header name, plus the remaining rows. The header must be the first
    non-empty row and start with ``first`` (``No`` / ``ID``), as NTT's scripts expect."""
    rows = _rows(ws)
    try:
        number, header = next(rows)
    except StopIteration:
        raise JmoshiError(f"sheet {ws.title!r} is empty", path=path) from None
    names = [str(v).strip() if v is not None else "" for v in header]
    if not names or names[0] != first:
        raise JmoshiError(
            f"sheet {ws.title!r}: expected a header row starting with {first!r}, got {names[:4]}",
            path=path,
            line=number,
        )
    columns = {name: i for i, name in enumerate(names) if name}
    for name in required:
        if name not in columns:
            raise JmoshiError(
                f"sheet {ws.title!r}: missing column {name!r} (header: {[n for n in names if n]})",
                path=path,
                line=number,
                key=name,
            )
    return columns, rows


def _cell(values: tuple, column: int) -> Any:
    return values[column] if column < len(values) else None


def _id_text(value: Any, *, path: Path, row: int, sheet: str, column: str) -> str | None:
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        raise JmoshiError(
            f"sheet {sheet!r}: dialogue id must be text like 'PP1' or '1_1', got {value!r}",
            path=path,
            line=row,
            key=column,
        )
    return str(value).strip()


def _utterance_text(value: Any, *, path: Path, row: int, column: str) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        return clean_text(value)
    # Excel stores a cell typed as "100" or "3.5" as a number; it is still the utterance.
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    if isinstance(value, float):
        return str(int(value)) if value.is_integer() else repr(value)
    raise JmoshiError(
        f"sheet {DIALOGUE_SHEET!r}: utterance must be text, got {value!r}", path=path, line=row, key=column
    )


def _dialogues(ws, path: Path, kind: _Workbook, report: LoadReport) -> Iterator[tuple[str, tuple[Turn, ...]]]:
    """Group consecutive 対話 rows by dialogue id, lazily."""
    first = "No" if kind is PERSONA_CHAT else "ID"
    columns, rows = _header(ws, path, (kind.id_column, "話者", "発話"), first=first)
    c_id, c_speaker, c_text = columns[kind.id_column], columns["話者"], columns["発話"]
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
            report.skip("dialogue without any non-empty turn", f"{path.name} {kind.corpus}-{current}")

    for row, values in rows:
        dialogue_id = _id_text(_cell(values, c_id), path=path, row=row, sheet=ws.title, column=kind.id_column)
        if dialogue_id is None:
            raise JmoshiError(f"sheet {ws.title!r}: missing dialogue id", path=path, line=row, key=kind.id_column)
        if dialogue_id != current:
            yield from flush()
            if dialogue_id in finished:
                raise JmoshiError(
                    f"sheet {ws.title!r}: rows of dialogue {dialogue_id!r} are not consecutive "
                    "(it appeared earlier); sort the sheet by dialogue",
                    path=path,
                    line=row,
                    key=kind.id_column,
                )
            current, turns = dialogue_id, []
        text = _utterance_text(_cell(values, c_text), path=path, row=row, column="発話")
        if not text:
            report.skip("empty text", f"{path.name} row {row}")
            continue
        speaker = _cell(values, c_speaker)
        if not isinstance(speaker, str) or not speaker.strip():
            raise JmoshiError(
                f"sheet {ws.title!r}: speaker must be 'A' or 'B', got {speaker!r}", path=path, line=row, key="話者"
            )
        turns.append(Turn(speaker.strip(), text))
    yield from flush()


def _read_personas(ws, path: Path) -> dict[str, dict[str, list[str]]]:
    """ペルソナID → {"A": [sentences], "B": [sentences]}."""
    columns, rows = _header(ws, path, ("ペルソナID", "A", "B"), first="No")
    personas: dict[str, dict[str, list[str]]] = {}
    for row, values in rows:
        cell = _cell(values, columns["ペルソナID"])
        pid = _id_text(cell, path=path, row=row, sheet=ws.title, column="ペルソナID")
        if pid is None:
            raise JmoshiError(f"sheet {ws.title!r}: missing persona id", path=path, line=row, key="ペルソナID")
        personas[pid] = {spk: _persona_sentences(_cell(values, columns[spk])) for spk in ("A", "B")}
    return personas


def _persona_sentences(cell: Any) -> list[str]:
    if cell is None:
        return []
    return [s.strip() for s in str(cell).splitlines() if s.strip()]


def _read_situations(ws, path: Path) -> dict[str, dict[str, str]]:
    """Dialogue id → {"emotion", "situation"}. The published header is 作業No | 感情 | 状況文;
    NTT's script reads the columns by position and tolerates no header, so do we."""
    situations: dict[str, dict[str, str]] = {}
    positions = (0, 1, 2)
    for row, values in _rows(ws):
        first = str(values[0]).strip() if values and values[0] is not None else ""
        if not situations and first in ("作業No", "ID", "No"):
            names = [str(v).strip() if v is not None else "" for v in values]
            missing = [n for n in ("感情", "状況文") if n not in names]
            if missing:
                raise JmoshiError(
                    f"sheet {ws.title!r}: missing column {missing[0]!r} (header: {names})",
                    path=path,
                    line=row,
                    key=missing[0],
                )
            positions = (0, names.index("感情"), names.index("状況文"))
            continue
        sid = _id_text(_cell(values, positions[0]), path=path, row=row, sheet=ws.title, column="作業No")
        if sid is None:
            raise JmoshiError(f"sheet {ws.title!r}: missing dialogue id", path=path, line=row, key="作業No")
        emotion, situation = _cell(values, positions[1]), _cell(values, positions[2])
        entry = {}
        if emotion is not None and str(emotion).strip():
            entry["emotion"] = str(emotion).strip()
        if situation is not None and str(situation).strip():
            entry["situation"] = clean_text(str(situation))
        situations[sid] = entry
    return situations
