"""Cross-check written shards against the run's unit records (``units/unit-K.json``).

A shard can be complete as a file and still be wrong for the run: a tar cut exactly at a member
boundary reads as a valid, shorter archive, and a stale or foreign shard reads fine. The unit
record of unit K lists the renderings that unit wrote, and unit K became exactly one shard of each
token format (``shards/shard-K.tar``; a parquet shard carries K in its metadata), so every shard's
members must be exactly its unit's renderings, and every unit must have its shard.
"""

from __future__ import annotations

import re
from pathlib import Path

from jmoshi_augment.augment.formats.shards import shard_key
from jmoshi_augment.augment.run.layout import UNITS_DIR, UnitRecords, read_unit_records

__all__ = ["UnitRecords", "compare_members", "missing_shards", "read_unit_records", "run_dir_of", "tar_unit"]

_TAR_RE = re.compile(r"^shard-(\d+)\.tar$")


def run_dir_of(path: Path) -> Path | None:
    """The synth output folder holding ``path`` (the nearest one with ``units/``), if any."""
    start = path if path.is_dir() else path.parent
    for p in [start, *start.parents][:4]:
        if (p / UNITS_DIR).is_dir():
            return p
    return None


def _ids(records: UnitRecords, views: bool | None = None) -> dict[int, list[str]]:
    """Rendering ids per unit; ``views``: only the acoustic views, or only the clean renderings."""
    return {k: [e.id for e in r.renderings if views is None or (e.acoustics is not None) == views]
            for k, r in records.records.items()}


def tar_unit(path: Path) -> int | None:
    m = _TAR_RE.match(path.name)
    return int(m.group(1)) if m else None


def compare_members(records: UnitRecords, k: int | None, members: list[str], *, keyed: bool, views: bool | None = None) -> list[str]:
    """Problems of one shard whose members (keys for tar, dialogue ids for parquet) should be
    unit ``k``'s renderings (``views``: only the acoustic views, or only the clean renderings, as
    a jmoshi shard holds). Each message names the unit record it was compared with."""
    if k is None:
        return ["no unit number (name or metadata): cannot be checked against the unit records"]
    ids = _ids(records)
    if k not in ids:
        return [f"belongs to unit {k}, but {records.relative(k)} does not exist "
                "(a shard from another run, or a unit not finished)"]
    expected = [shard_key(i) if keyed else i for i in ids[k]]
    where = records.relative(k)
    problems = []
    missing = [i for i in expected if i not in set(members)]
    extra = [i for i in members if i not in set(expected)]
    if missing:
        problems.append(f"lacks {len(missing)} of the {len(expected)} dialogues {where} lists "
                        f"(cut short or stale?): {', '.join(missing[:5])}{' …' if len(missing) > 5 else ''}")
    if extra:
        problems.append(f"holds {len(extra)} dialogue(s) that {where} does not list: "
                        f"{', '.join(extra[:5])}{' …' if len(extra) > 5 else ''}")
    return problems


def missing_shards(records: UnitRecords, seen_units: set[int], what: str) -> list[str]:
    """Units with renderings but no shard of a format that the run did write."""
    return [f"{records.relative(k)} lists {len(ids)} dialogue(s), but there is no {what} for unit {k}"
            for k, ids in sorted(_ids(records).items()) if ids and k not in seen_units]
