"""The websocket server with a real client: handshake, audio, text, concurrency and bad input."""

from __future__ import annotations

import asyncio

import aiohttp
import numpy as np
import pytest
import soundfile

from jmoshi_augment.constants import FRAME_RATE, FRAME_SIZE, SAMPLE_RATE
from jmoshi_augment.runtime import protocol
from jmoshi_augment.runtime.protocol import MessageKind
from jmoshi_augment.runtime.server import BAD_DATA_CLOSE_CODE, BUSY_CLOSE_CODE, ServerOptions
from runtime_helpers import handshake, ogg_pages, running_server, speech_like, talk

N_FRAMES = 6


def test_two_clients_each_get_their_stream_and_a_third_is_told_busy(tmp_path):
    async def main():
        async with running_server(ServerOptions(record_dir=tmp_path / "rec")) as (http, url, engine, _):
            page = await http.get(url + "/")
            assert page.status == 200 and "J-Moshi chat" in await page.text()
            assert (await http.get(url + "/static/ogg.js")).status == 200
            a = await http.ws_connect(url + "/api/chat")
            b = await http.ws_connect(url + "/api/chat")
            await handshake(a)
            await handshake(b)
            c = await http.ws_connect(url + "/api/chat")
            busy = await c.receive()
            assert busy.data[0] == MessageKind.ERROR and busy.data[1:].decode().startswith("busy: all 2")
            assert (await c.receive()).type == aiohttp.WSMsgType.CLOSE and c.close_code == BUSY_CLOSE_CODE
            (pa, _), (pb, _) = await asyncio.gather(
                talk(a, speech_like(N_FRAMES / FRAME_RATE, seed=1), expect_frames=N_FRAMES - 1),
                talk(b, speech_like(N_FRAMES / FRAME_RATE, seed=2), expect_frames=N_FRAMES - 1),
            )
            assert pa.size >= (N_FRAMES - 1) * FRAME_SIZE and pb.size >= (N_FRAMES - 1) * FRAME_SIZE
            assert np.abs(pa).max() > 0
            await a.close()
            await b.close()
            for _ in range(100):
                if engine.active_sessions == 0:
                    break
                await asyncio.sleep(0.05)
            assert engine.active_sessions == 0
        wavs = sorted((tmp_path / "rec").glob("*.wav"))
        assert len(wavs) == 2 and not list((tmp_path / "rec").glob("*.tmp-*"))
        data, sr = soundfile.read(wavs[0])
        assert sr == SAMPLE_RATE and data.shape[1] == 2 and data.shape[0] >= (N_FRAMES - 1) * FRAME_SIZE
        assert data.shape[0] % FRAME_SIZE == 0
        assert np.abs(data[:, 1]).max() > 0.01  # the user's channel holds the user's audio

    asyncio.run(main())


def test_bad_input_is_contained_to_its_client():
    async def main():
        async with running_server(ServerOptions(max_message_bytes=64 * 1024, opus_workers=0)) as (http, url, engine, _):
            good = await http.ws_connect(url + "/api/chat")
            await handshake(good)
            # Unknown kinds, empty messages and text frames are skipped; the session goes on.
            await good.send_bytes(b"\x09hello")
            await good.send_bytes(b"")
            await good.send_str("not binary")
            await good.send_bytes(protocol.Message(MessageKind.PING).encode())
            pcm, _ = await talk(good, speech_like(4 / FRAME_RATE, seed=3), expect_frames=3)
            assert pcm.size >= 3 * FRAME_SIZE

            bad = await http.ws_connect(url + "/api/chat")
            await handshake(bad)
            await bad.send_bytes(b"\x01" + b"garbage, not an Ogg page" * 4)
            err = await bad.receive()
            assert err.data[0] == MessageKind.ERROR and err.data[1:].decode().startswith("bad audio")
            assert (await bad.receive()).type == aiohttp.WSMsgType.CLOSE and bad.close_code == BAD_DATA_CLOSE_CODE

            big = await http.ws_connect(url + "/api/chat")
            await handshake(big)
            await big.send_bytes(b"\x01" + bytes(200 * 1024))
            msg = await big.receive()
            assert msg.type == aiohttp.WSMsgType.CLOSE and big.close_code == 1009  # message too big

            # Abrupt disconnect in the middle of an Ogg page: the slot is freed, no close frame sent.
            rude = await http.ws_connect(url + "/api/chat")
            await handshake(rude)
            page = ogg_pages(speech_like(0.16, seed=4))[0]
            await rude.send_bytes(protocol.audio(page[: len(page) // 2]))
            rude._response.connection.transport.abort()
            await rude.close()

            pcm, _ = await talk(good, speech_like(3 / FRAME_RATE, seed=5), expect_frames=3)
            assert pcm.size >= 3 * FRAME_SIZE  # the well-behaved client kept being served
            for _ in range(100):
                if engine.active_sessions == 1:
                    break
                await asyncio.sleep(0.05)
            assert engine.active_sessions == 1
            await good.close()

    asyncio.run(main())


def test_access_token_is_required_when_set():
    async def main():
        async with running_server(ServerOptions(token="s3cret", opus_workers=0)) as (http, url, _, _):
            with pytest.raises(aiohttp.WSServerHandshakeError) as e:
                await http.ws_connect(url + "/api/chat")
            assert e.value.status == 401
            with pytest.raises(aiohttp.WSServerHandshakeError):
                await http.ws_connect(url + "/api/chat?token=wrong")
            ws = await http.ws_connect(url + "/api/chat?token=s3cret")
            await handshake(ws)
            await ws.close()
            ws = await http.ws_connect(url + "/api/chat", headers={"Authorization": "Bearer s3cret"})
            await handshake(ws)
            await ws.close()

    asyncio.run(main())
