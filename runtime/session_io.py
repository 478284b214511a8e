"""Per-connection audio work of the server: Opus decode/encode, text pieces, the recording.

On a GPU the batched model step for 32 sessions takes ~40 ms, but the Opus encode and decode of 32
sessions (~2 ms per session-frame) on the event loop's one thread took longer than the 80 ms frame
(bench/RESULTS.md). So each connection's codecs live in an Opus worker process
(:mod:`.opus_worker`); the connection's receive loop and send loop each await their own jobs one at
a time, which keeps every session's pages in order while different sessions are coded on different
cores. ``workers=None`` runs the same codec calls inline on the event loop (the old behaviour, kept
for the bench and small servers). Recording and detokenising stay in the server process: they cost
microseconds per frame.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from jmoshi_augment.runtime import protocol
from jmoshi_augment.runtime.protocol import Detokenizer

if TYPE_CHECKING:
    import numpy as np

    from jmoshi_augment.runtime.engine import StepOutput
    from jmoshi_augment.runtime.opus_worker import OpusWorkers


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
    connection, with the codecs in an Opus worker (or inline when ``workers`` is None)."""

    def __init__(self, session_id: int, sample_rate: int, text_tokenizer: Any, workers: "OpusWorkers | None",
                 recorder: Recorder | None = None) -> None:
        self.sid = session_id
        self.workers = workers
        if workers is None:
            import sphn

            self.reader = sphn.OpusStreamReader(sample_rate)
            self.writer = sphn.OpusStreamWriter(sample_rate)
        else:
            workers.post(session_id, "open", sample_rate)  # runs before this session's next job
        self.detok = Detokenizer(text_tokenizer)
        self.recorder = recorder

    async def _codec(self, op: str, arg: Any) -> Any:
        if self.workers is None:
            return self.reader.append_bytes(arg) if op == "decode" else self.writer.append_pcm(arg)
        return await self.workers.call(self.sid, op, arg)

    async def decode(self, payload: bytes) -> "np.ndarray":
        """Ogg pages → PCM (raises ValueError on anything that is not Ogg-Opus, as sphn does)."""
        return await self._codec("decode", payload)

    async def encode(self, out: "StepOutput", send: bool = True) -> list[bytes]:
        """Record the step, and unless ``send`` is False return the messages to send for it."""
        if self.recorder is not None:
            self.recorder.write(out)
        if not send:
            return []
        messages = []
        ogg = await self._codec("encode", out.pcm)
        if ogg:
            messages.append(protocol.audio(ogg))
        piece = self.detok.push(out.text_id)
        if piece:
            messages.append(protocol.text(piece))
        return messages

    def close(self) -> int:
        """Free the worker's codecs and finish the recording; returns its length in frames."""
        if self.workers is not None:
            self.workers.post(self.sid, "close")
        if self.recorder is None:
            return 0
        self.recorder.close()
        return self.recorder.frames
