"""Opus in worker processes: each session's pages decode in order, batched round trips give what
inline decoding gives, and a bad payload fails that call only."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest
import sphn

from jmoshi_augment.constants import FRAME_RATE, FRAME_SIZE, SAMPLE_RATE
from jmoshi_augment.runtime.opus_worker import OpusWorkers
from runtime_helpers import ogg_pages, speech_like


def test_workers_decode_and_encode_like_inline_codecs_in_order():
    pages = {sid: ogg_pages(speech_like(8 / FRAME_RATE, seed=sid)) for sid in range(3)}
    expected = {}
    for sid, ps in pages.items():
        reader = sphn.OpusStreamReader(SAMPLE_RATE)
        expected[sid] = np.concatenate([reader.append_bytes(p) for p in ps])

    async def main():
        workers = OpusWorkers(2)  # sessions 0 and 2 share worker 0: their jobs interleave there
        await asyncio.get_running_loop().run_in_executor(None, workers.start)
        try:
            for sid in pages:
                workers.post(sid, "open", SAMPLE_RATE)

            async def session(sid: int) -> np.ndarray:
                return np.concatenate([await workers.call(sid, "decode", p) for p in pages[sid]])

            got = dict(zip(pages, await asyncio.gather(*(session(s) for s in pages))))
            with pytest.raises(ValueError):
                await workers.call(1, "decode", b"not an ogg page" * 8)
            ogg = await workers.call(0, "encode", np.zeros(FRAME_SIZE, np.float32))
            assert isinstance(ogg, bytes)
            return got
        finally:
            workers.shutdown()

    got = asyncio.run(asyncio.wait_for(main(), 120))
    for sid in pages:
        np.testing.assert_array_equal(got[sid], expected[sid])
