"""Per-connection audio work of the server: Opus decode/encode, text pieces, the recording.

On a GPU the batched model step for 32 sessions takes ~40 ms, but the Opus encode and decode of 32
sessions (~2 ms per session-frame) on the event loop's one thread took longer than the 80 ms frame
(bench/RESULTS.md). So each connection's codec work runs on a shared thread pool; the connection's
receive loop and send loop each await their own jobs one at a time, which keeps every session's
pages in order while different sessions are encoded in parallel (sphn's codecs are native code).
``pool=None`` runs the same jobs inline on the event loop (the old behaviour, kept for the bench).
"""

from __future__ import annotations

import asyncio
from concurrent.futures import Executor
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, TypeVar

from jmoshi_augment.runtime import protocol
from jmoshi_augment.runtime.protocol import Detokenizer

if TYPE_CHECKING:
    import numpy as np

    from jmoshi_augment.runtime.engine import StepOutput

T = TypeVar("T")


class Recorder:
    """Streams a session to ``<name>.wav.tmp-PID`` and renames it when the session ends."""

    def __init__(self, path: Path, sample_rate: int) -> None:
        import soundfile

        from jmoshi_augment.io import atomic_output

        self.path = path
        self._ctx = atomic_output(path, "wb")
        self._file = self._ctx.__enter__()
        self._wav = soundfile.SoundFile(self._file, mode="w", samplerate=sample_rate, channels=2,
                                        format="WAV", subtype="PCM_16")
        self.frames = 0

    def write(self, out: "StepOutput") -> None:
        import numpy as np

        self._wav.write(np.stack([out.pcm, out.user_pcm], axis=1))
        self.frames += 1

    def close(self) -> None:
        self._wav.close()
        self._ctx.__exit__(None, None, None)


class SessionCodec:
    """Decoder of the client's Ogg-Opus stream, encoder of ours, detokeniser and recorder of one
    connection. Each method is one job, run on ``pool`` (or inline when ``pool`` is None)."""

    def __init__(self, sample_rate: int, text_tokenizer: Any, pool: Executor | None,
                 recorder: Recorder | None = None) -> None:
        import sphn

        self.pool = pool
        self.reader = sphn.OpusStreamReader(sample_rate)
        self.writer = sphn.OpusStreamWriter(sample_rate)
        self.detok = Detokenizer(text_tokenizer)
        self.recorder = recorder

    async def _run(self, fn: Callable[..., T], *args: Any) -> T:
        if self.pool is None:
            return fn(*args)
        return await asyncio.get_running_loop().run_in_executor(self.pool, fn, *args)

    async def decode(self, payload: bytes) -> "np.ndarray":
        """Ogg pages → PCM (raises ValueError on anything that is not Ogg-Opus, as sphn does)."""
        return await self._run(self.reader.append_bytes, payload)

    def _encode(self, out: "StepOutput", send: bool) -> list[bytes]:
        if self.recorder is not None:
            self.recorder.write(out)
        if not send:
            return []
        messages = []
        ogg = self.writer.append_pcm(out.pcm)
        if ogg:
            messages.append(protocol.audio(ogg))
        piece = self.detok.push(out.text_id)
        if piece:
            messages.append(protocol.text(piece))
        return messages

    async def encode(self, out: "StepOutput", send: bool = True) -> list[bytes]:
        """Record the step, and unless ``send`` is False return the messages to send for it."""
        return await self._run(self._encode, out, send)

    async def close(self) -> float:
        """Finish the recording; returns its length in frames (0 without one)."""
        if self.recorder is None:
            return 0.0
        await self._run(self.recorder.close)
        return float(self.recorder.frames)
