"""The run folder's layout: where a unit's record lives, what it holds, and the one reader of it.

A synth output folder is finished unit by unit: unit k's record ``units/unit-K.json`` is written
last (atomically), so its existence is what "unit k is done" means, and everything the run reports
(manifest, ``report.json``, ``report.html``, shard verification) is rebuilt from these records.
The record is a :class:`UnitRecord` here; every consumer reads it through :func:`read_unit_record`
or :func:`read_unit_records`, never by parsing the JSON itself.

Records written by earlier versions are read through :data:`RENAMED_KEYS` (old key → new key,
listed in docs/formats.md), so a folder made before a rename still resumes and reports.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from jmoshi_augment.errors import JmoshiError

UNITS_DIR = "units"
_UNIT_RE = re.compile(r"^unit-(\d+)\.json$")

# Key names of earlier versions, renamed when one idea got one name (docs/formats.md).
RENAMED_KEYS = {"source": "source_turns", "source_chars": "source_characters"}
# The planner's event counters (``planned``): aizuchi and backchannel are one idea, one name.
RENAMED_EVENTS = {f"{kind}s_after_aizuchi": f"{kind}s_after_backchannel" for kind in ("gap", "overlap", "interruption")}


def unit_path(out_dir: Path, k: int) -> Path:
    return Path(out_dir) / UNITS_DIR / f"unit-{k:05d}.json"


def unit_index(path: Path) -> int | None:
    """K of ``unit-K.json``, or None for any other name."""
    m = _UNIT_RE.match(path.name)
    return int(m.group(1)) if m else None


def unit_files(out_dir: Path) -> list[Path]:
    """The unit records in a folder, in unit order."""
    return sorted(p for p in (Path(out_dir) / UNITS_DIR).glob("unit-*.json") if unit_index(p) is not None)


class UnitRecordError(JmoshiError):
    """A unit record this version cannot read: names the file and the key."""


def _renamed(d: dict[str, Any], renames: dict[str, str]) -> dict[str, Any]:
    """``d`` with old key names replaced, in place of the old key (so the order is kept)."""
    if not any(k in d for k in renames):
        return d
    return {renames.get(k, k): v for k, v in d.items()}


def _take(d: dict[str, Any], key: str, kind: type | tuple[type, ...], default: Any, where: str) -> Any:
    value = d.get(key, default)
    if value is default:
        return value
    if not isinstance(value, kind) or (isinstance(value, bool) and bool not in (kind if isinstance(kind, tuple) else (kind,))):
        names = kind.__name__ if isinstance(kind, type) else " or ".join(k.__name__ for k in kind)
        raise ValueError(f"{where}{key}: expected {names}, got {type(value).__name__}")
    return value


@dataclass(frozen=True)
class RenderingEntry:
    """One rendering (one main-speaker choice of a dialogue) as its unit record lists it."""

    id: str
    dialogue_id: str | None = None
    corpus: str | None = None
    duration: float | None = None  # seconds, rounded to ms
    speaker_map: dict[str, str] = field(default_factory=dict)  # {"main": speaker, "other": speaker}
    turns: int | None = None  # speech segments of the script
    planned: dict[str, int] = field(default_factory=dict)  # the planner's event counts (zeros omitted)
    voices: dict[str, str] = field(default_factory=dict)  # {"main": name, "other": name}
    voice_params: dict[str, Any] | None = None  # drawn voices: every parameter, per side
    source_turns: list[Any] = field(default_factory=list)  # [[speaker, text], ...] as the corpus has them
    script: list[Any] = field(default_factory=list)  # the spoken script, per segment
    not_spoken: dict[str, int] = field(default_factory=dict)  # source characters not spoken, by reason
    stats: dict[str, Any] | None = None  # DialogueStats.to_dict() of the mixed audio (a view: of its clean stems)
    acoustics: dict[str, Any] | None = None  # an acoustic view: every parameter drawn (augment/acoustics/params.py)
    candidates: dict[str, Any] | None = None  # best of N: {"winner", "candidates"}
    dropped_tokens: int | None = None  # text tokens that found no frame (token formats only)

    def to_dict(self) -> dict[str, Any]:
        """The JSON object, keys in the order records have always been written; optional keys
        only when set."""
        d: dict[str, Any] = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name in _OPTIONAL_ENTRY_KEYS and value is None:
                continue
            d[f.name] = value
        return d

    @classmethod
    def from_dict(cls, d: Any, where: str = "") -> "RenderingEntry":
        if not isinstance(d, dict):
            raise ValueError(f"{where}: expected an object, got {type(d).__name__}")
        d = _renamed(d, RENAMED_KEYS)
        where = f"{where}." if where else ""
        rid = _take(d, "id", str, None, where)
        if rid is None:
            raise ValueError(f"{where}id: missing")
        planned = _take(d, "planned", dict, {}, where)
        return cls(
            id=rid,
            dialogue_id=_take(d, "dialogue_id", str, None, where),
            corpus=_take(d, "corpus", str, None, where),
            duration=_take(d, "duration", (int, float), None, where),
            speaker_map=_take(d, "speaker_map", dict, {}, where),
            turns=_take(d, "turns", int, None, where),
            planned=_renamed(planned, RENAMED_EVENTS),
            voices=_take(d, "voices", dict, {}, where),
            voice_params=_take(d, "voice_params", dict, None, where),
            source_turns=_take(d, "source_turns", list, [], where),
            script=_take(d, "script", list, [], where),
            not_spoken=_take(d, "not_spoken", dict, {}, where),
            stats=_take(d, "stats", dict, None, where),
            acoustics=_take(d, "acoustics", dict, None, where),
            candidates=_take(d, "candidates", dict, None, where),
            dropped_tokens=_take(d, "dropped_tokens", int, None, where),
        )


_OPTIONAL_ENTRY_KEYS = {"dialogue_id", "corpus", "duration", "turns", "voice_params", "stats", "acoustics", "candidates", "dropped_tokens"}


@dataclass(frozen=True)
class UnitRecord:
    """What unit k did: the dialogues it covered, the renderings it wrote, what it rejected and
    why, what its scripts left out, and how long each stage took."""

    unit: int
    dialogues: list[str]  # the unit's dialogue ids, in corpus order (resume compares them)
    renderings: list[RenderingEntry] = field(default_factory=list)
    rejected: dict[str, str] = field(default_factory=dict)  # dialogue id → reason (content failures only)
    rejected_candidates: dict[str, Any] = field(default_factory=dict)  # dialogue id → best-of-N trace per main
    skips: dict[str, int] = field(default_factory=dict)  # turns not voiced, by reason
    source_characters: int = 0  # as augment/text/normalize.py counts them
    not_spoken: dict[str, int] = field(default_factory=dict)  # source characters not spoken, by reason
    seconds: dict[str, float] = field(default_factory=dict)  # per stage (timing: differs run to run)
    rewrite: dict[str, Any] | None = None  # the LLM rewrite's counts, when it ran

    def to_dict(self) -> dict[str, Any]:
        d = {f.name: getattr(self, f.name) for f in fields(self)}
        d["renderings"] = [e.to_dict() for e in self.renderings]
        return d

    def to_json(self) -> str:
        from jmoshi_augment.io import json_safe

        return json.dumps(json_safe(self.to_dict()), ensure_ascii=False, indent=1, allow_nan=False)

    @classmethod
    def from_dict(cls, d: Any) -> "UnitRecord":
        """Raises ValueError naming the key when ``d`` is not a unit record."""
        if not isinstance(d, dict):
            raise ValueError(f"expected an object, got {type(d).__name__}")
        d = _renamed(d, RENAMED_KEYS)
        k = _take(d, "unit", int, None, "")
        dialogues = _take(d, "dialogues", list, None, "")
        renderings = _take(d, "renderings", list, None, "")
        for key, value in (("unit", k), ("dialogues", dialogues), ("renderings", renderings)):
            if value is None:
                raise ValueError(f"{key}: missing")
        return cls(
            unit=k,
            dialogues=[str(i) for i in dialogues],
            renderings=[RenderingEntry.from_dict(e, f"renderings[{n}]") for n, e in enumerate(renderings)],
            rejected={str(i): str(r) for i, r in _take(d, "rejected", dict, {}, "").items()},
            rejected_candidates=_take(d, "rejected_candidates", dict, {}, ""),
            skips=_take(d, "skips", dict, {}, ""),
            source_characters=_take(d, "source_characters", int, 0, ""),
            not_spoken=_take(d, "not_spoken", dict, {}, ""),
            seconds=_take(d, "seconds", dict, {}, ""),
            rewrite=_take(d, "rewrite", dict, None, ""),
        )


def read_unit_record(path: Path) -> UnitRecord:
    """The record at ``path``; a :class:`UnitRecordError` (file + key) when it cannot be read."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as e:
        raise UnitRecordError(f"unreadable ({type(e).__name__}: {e})".splitlines()[0], path=path) from None
    try:
        return UnitRecord.from_dict(data)
    except ValueError as e:
        raise UnitRecordError(f"not a unit record this version can read ({e})", path=path) from None


@dataclass
class UnitRecords:
    """Every readable record of a folder by unit number, and the ones that could not be read."""

    run_dir: Path
    records: dict[int, UnitRecord] = field(default_factory=dict)
    unreadable: list[UnitRecordError] = field(default_factory=list)
    files: int = 0  # record files present, readable or not

    def path(self, k: int) -> Path:
        return unit_path(self.run_dir, k)

    def relative(self, k: int) -> str:
        return f"{UNITS_DIR}/{unit_path(self.run_dir, k).name}"

    @property
    def renderings(self) -> list[RenderingEntry]:
        return [e for r in self.ordered() for e in r.renderings]

    def ordered(self) -> list[UnitRecord]:
        return [self.records[k] for k in sorted(self.records)]


def read_unit_records(out_dir: Path, *, strict: bool = True) -> UnitRecords:
    """Every unit record of ``out_dir``. ``strict``: the first unreadable one raises (a run that
    builds its report from them must not silently leave units out); otherwise it is listed in
    ``unreadable`` (a report page or verifier shows the problem and goes on)."""
    out = UnitRecords(Path(out_dir))
    for p in unit_files(out_dir):
        out.files += 1
        try:
            record = read_unit_record(p)
        except UnitRecordError as e:
            if strict:
                raise UnitRecordError(f"{e.message}; delete it to redo unit {unit_index(p)}", path=p) from None
            out.unreadable.append(e)
            continue
        out.records[record.unit] = record
    return out
