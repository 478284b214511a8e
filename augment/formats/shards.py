"""Token shards: plain tar files in webdataset layout.

One dialogue = three members sharing a key (webdataset splits the key at the first dot)::

    KEY.codes.npy   int16 [2, n_q, T]   Mimi codes, channel 0 = main (the model), 1 = other
    KEY.json        ids, corpus, speaker map, duration, n_q, dropped tokens (utf-8, sorted keys)
    KEY.text.npy    int32 [2, T]        text tokens on the 12.5 Hz grid, same channels

Members are sorted by name and carry a fixed mtime, owner and mode, so identical input gives a
byte-identical shard (a resumed run's shards equal an uninterrupted run's). A shard is written to a
temporary name and renamed when complete: a killed run never leaves half a shard.
"""

from __future__ import annotations

import io
import json
import re
import tarfile
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np

from jmoshi_augment.augment.types import TokenizedDialogue
from jmoshi_augment.errors import JmoshiError
from jmoshi_augment.io import atomic_output

CODES, TEXT, META = "codes.npy", "text.npy", "json"
MEMBERS = (CODES, META, TEXT)  # sorted order inside a key
_KEY_UNSAFE = re.compile(r"[./\\\s\x00]")
MTIME = 0  # fixed: shards must not depend on when they were written


def shard_key(item_id: str) -> str:
    """A webdataset key for an id: no dots (they start the extension), slashes or spaces."""
    return _KEY_UNSAFE.sub("_", item_id)


def _npy_bytes(array: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.lib.format.write_array(buf, np.ascontiguousarray(array), allow_pickle=False)
    return buf.getvalue()


def _check_item(item: TokenizedDialogue) -> None:
    codes, text = item.codes, item.text
    if codes.ndim != 3 or codes.shape[0] != 2:
        raise JmoshiError(f"codes must be [2, n_q, T], got shape {codes.shape}", key=item.id)
    if text.shape != (2, codes.shape[2]):
        raise JmoshiError(f"text must be [2, T={codes.shape[2]}], got shape {text.shape}", key=item.id)


def encode_item(item: TokenizedDialogue) -> dict[str, bytes]:
    """A dialogue's members (extension → bytes): int16 codes, int32 text, json meta."""
    _check_item(item)
    if item.codes.size and (item.codes.min() < np.iinfo(np.int16).min or item.codes.max() > np.iinfo(np.int16).max):
        raise JmoshiError("codes do not fit int16", key=item.id)
    meta = {**item.meta, "id": item.id, "duration": item.duration}
    return {
        CODES: _npy_bytes(item.codes.astype(np.int16)),
        META: json.dumps(meta, ensure_ascii=False, sort_keys=True, separators=(",", ":")).encode("utf-8"),
        TEXT: _npy_bytes(item.text.astype(np.int32)),
    }


def write_tar_shard(path: str | Path, items: Sequence[TokenizedDialogue]) -> Path:
    """Write ``items`` as one tar shard (temp name, then rename); returns ``path``."""
    path = Path(path)
    keyed: dict[str, TokenizedDialogue] = {}
    for item in items:
        key = shard_key(item.id)
        if key in keyed:
            raise JmoshiError(f"two dialogues share the shard key {key!r} ({keyed[key].id!r}, {item.id!r})", path=path)
        keyed[key] = item
    members = []
    for key, item in keyed.items():
        members.extend((f"{key}.{ext}", data) for ext, data in encode_item(item).items())
    members.sort(key=lambda m: m[0])
    with atomic_output(path, "wb") as f:
        with tarfile.open(fileobj=f, mode="w", format=tarfile.PAX_FORMAT) as tar:
            for name, data in members:
                info = tarfile.TarInfo(name)
                info.size, info.mtime, info.mode = len(data), MTIME, 0o644
                info.uid = info.gid = 0
                info.uname = info.gname = ""
                tar.addfile(info, io.BytesIO(data))
    return path


def _load_npy(data: bytes, name: str, path: Path) -> np.ndarray:
    try:
        return np.lib.format.read_array(io.BytesIO(data), allow_pickle=False)
    except (ValueError, EOFError, OSError) as e:
        raise JmoshiError(f"member {name}: not a valid .npy array ({e})", path=path) from None


def read_tar_members(path: str | Path) -> Iterator[tuple[str, dict[str, bytes]]]:
    """``(key, {extension: bytes})`` per dialogue, in file order; raw, for readers and verify."""
    path = Path(path)
    try:
        tar = tarfile.open(path, mode="r:")
    except (OSError, tarfile.TarError) as e:
        raise JmoshiError(f"not a readable tar shard: {e}", path=path) from None
    with tar:
        key, group = None, {}
        try:
            for info in tar:
                if not info.isfile():
                    continue
                base = info.name.rsplit("/", 1)[-1]
                k, _, ext = base.partition(".")
                if k != key:
                    if key is not None:
                        yield key, group
                    key, group = k, {}
                data = tar.extractfile(info).read()  # type: ignore[union-attr]
                group[ext] = data
        except tarfile.TarError as e:
            raise JmoshiError(f"truncated or corrupt tar shard: {e}", path=path) from None
        if key is not None:
            yield key, group


def decode_item(key: str, group: dict[str, bytes], path: str | Path) -> TokenizedDialogue:
    path = Path(path)
    missing = [ext for ext in MEMBERS if ext not in group]
    if missing:
        raise JmoshiError(f"dialogue lacks member(s) {', '.join(f'{key}.{m}' for m in missing)}", path=path, key=key)
    try:
        meta = json.loads(group[META].decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise JmoshiError(f"{key}.json is not valid json: {e}", path=path, key=key) from None
    codes = _load_npy(group[CODES], f"{key}.{CODES}", path)
    text = _load_npy(group[TEXT], f"{key}.{TEXT}", path)
    if "id" not in meta or "duration" not in meta:
        raise JmoshiError("meta json lacks 'id' or 'duration'", path=path, key=key)
    return TokenizedDialogue(id=meta["id"], codes=codes, text=text, duration=float(meta["duration"]), meta=meta)


def read_tar_shard(path: str | Path) -> Iterator[TokenizedDialogue]:
    """Dialogues of a shard written by :func:`write_tar_shard`, in key order."""
    for key, group in read_tar_members(path):
        yield decode_item(key, group, path)
