"""What a person needs to check a shard by eye: its text streams frame by frame, and its codes
decoded back to audio with Mimi (``jmoshi-augment shards inspect``)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Iterator

import numpy as np

from jmoshi_augment.augment.formats.jmoshi_format import read_jmoshi_parquet
from jmoshi_augment.augment.formats.shards import read_tar_shard
from jmoshi_augment.augment.tokens.text_tokens import display_piece
from jmoshi_augment.constants import TEXT_IDS
from jmoshi_augment.augment.types import FRAME_RATE, TokenizedDialogue
from jmoshi_augment.errors import JmoshiError

if TYPE_CHECKING:
    import sentencepiece
    from moshi.models.compression import MimiModel

PAD_MARK, EOP_MARK = "·", "|"


def load_shard(path: str | Path) -> Iterator[tuple[TokenizedDialogue, tuple[str, str]]]:
    """Dialogues of a tar or J-Moshi parquet shard, with the names of their two channels."""
    path = Path(path)
    if path.suffix == ".parquet":
        for row in read_jmoshi_parquet(path):
            item = TokenizedDialogue(
                id=row.dialogue_id,
                codes=np.stack([row.A[1:], row.B[1:]]).astype(np.int16),
                text=np.stack([row.A[0], row.B[0]]).astype(np.int32),
                duration=row.A.shape[1] / FRAME_RATE,
                meta={"id": row.dialogue_id},
            )
            yield item, ("A", "B")
    elif path.suffix == ".tar":
        for item in read_tar_shard(path):
            a = item.meta.get("a_channel")
            names = ("main", "other") if a is None else (("main (A)", "other (B)") if a == 0 else ("main (B)", "other (A)"))
            yield item, names
    else:
        raise JmoshiError("expected a .tar or .parquet shard", path=path)


def pick(path: str | Path, key: str | None) -> tuple[TokenizedDialogue, tuple[str, str], list[str]]:
    """The dialogue ``key`` (its id; default: the first) and the ids available."""
    ids: list[str] = []
    for item, names in load_shard(path):
        ids.append(item.id)
        if key is None or item.id == key:
            return item, names, ids
    raise JmoshiError(f"no dialogue {key!r} in this shard (it holds {', '.join(ids[:10])}{' ...' if len(ids) > 10 else ''})", path=path)


def _token(sp: "sentencepiece.SentencePieceProcessor | None", token: int, pad_id: int, eop_id: int) -> str:
    if token == pad_id:
        return PAD_MARK
    if token == eop_id:
        return EOP_MARK
    if sp is None:
        return str(token)
    return display_piece(sp, token) if 0 <= token < sp.vocab_size() else f"<{token}?>"


def text_frames(
    item: TokenizedDialogue,
    names: tuple[str, str],
    sp: "sentencepiece.SentencePieceProcessor | None",
    *,
    all_frames: bool = False,
) -> list[str]:
    """Header, each channel's text, then one line per frame (frames with a token, or all)."""
    pad_id = int(item.meta.get("text_padding_id", TEXT_IDS.pad))
    eop_id = int(item.meta.get("end_of_text_padding_id", TEXT_IDS.end_of_padding))
    t = item.text.shape[1]
    extra = "".join(f"  {k}={item.meta[k]}" for k in ("corpus", "dialogue_id", "dropped_tokens") if k in item.meta)
    lines = [f"{item.id}: {item.duration:.2f} s, {t} frames, n_q={item.codes.shape[1]}{extra}"]
    for ch, name in enumerate(names):
        tokens = [int(x) for x in item.text[ch] if x not in (pad_id, eop_id)]
        joined = "".join(_token(sp, x, pad_id, eop_id) for x in tokens) if sp is not None else " ".join(map(str, tokens))
        lines.append(f"{name}: {joined}")
    lines.append(f"(text padding {PAD_MARK}, end of padding {EOP_MARK})")
    width = max(10, *(len(n) for n in names))
    lines.append(f"{'frame':>6} {'time':>7}  {names[0]:<{width}}  {names[1]}")
    for f in range(t):
        a, b = int(item.text[0, f]), int(item.text[1, f])
        if not all_frames and a == pad_id and b == pad_id:
            continue
        lines.append(f"{f:>6} {f / FRAME_RATE:>7.2f}  {_token(sp, a, pad_id, eop_id):<{width}}  {_token(sp, b, pad_id, eop_id)}")
    return lines


def decode_audio(item: TokenizedDialogue, mimi: "MimiModel") -> np.ndarray:
    """Codes ``[2, n_q, T]`` → float32 stereo ``[2, T * 1920]`` at 24 kHz."""
    import torch

    n_q = item.codes.shape[1]
    if n_q > mimi.total_codebooks:
        raise JmoshiError(f"the shard holds {n_q} codebooks, this Mimi has {mimi.total_codebooks}", key=item.id)
    mimi.set_num_codebooks(n_q)
    device = next(mimi.parameters()).device
    codes = torch.from_numpy(item.codes.astype(np.int64)).to(device)
    with torch.inference_mode():
        audio = mimi.decode(codes)  # [2, 1, N]: the two channels decode as a batch
    return audio[:, 0].float().cpu().numpy()


def write_decoded(path: str | Path, audio: np.ndarray, sample_rate: int) -> None:
    import soundfile as sf

    from jmoshi_augment.io import atomic_output

    with atomic_output(path, "wb") as f:
        sf.write(f, np.clip(audio, -1, 1).T, sample_rate, subtype="PCM_16", format="WAV")

