"""Nobody can starve or hijack a session: idle limit, heartbeat, Origin check, empty token, dropped
input notices, rate-limited logs, fast shutdown, and a bounded load test on 127.0.0.1."""

from __future__ import annotations

import asyncio
import json
import logging
import threading
import time

import aiohttp
import numpy as np
import pytest
import soundfile

from jmoshi_augment.constants import FRAME_RATE, FRAME_SIZE, SAMPLE_RATE
from jmoshi_augment.runtime import protocol
from jmoshi_augment.runtime.engine import Engine, SamplingOptions
from jmoshi_augment.runtime.protocol import MessageKind
from jmoshi_augment.runtime.server import (
    BUSY_CLOSE_CODE,
    IDLE_CLOSE_CODE,
    SHUTDOWN_CLOSE_CODE,
    ServerOptions,
)
from jmoshi_augment.runtime.serving import serve
from runtime_helpers import handshake, ogg_pages, running_server, speech_like, talk, tiny_model

TEST_TIMEOUT_S = 120  # every test below is bounded; a hang fails instead of stalling the suite


def run(coro):
    async def bounded():
        async with asyncio.timeout(TEST_TIMEOUT_S):
            return await coro
    return asyncio.run(bounded())


async def _wait_for(predicate, timeout: float = 10.0) -> None:
    end = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < end, "condition not reached in time"
        await asyncio.sleep(0.02)


def test_idle_client_is_told_and_closed_and_frees_the_slot():
    async def main():
        async with running_server(ServerOptions(idle_timeout_s=0.5, opus_workers=0), slots=1) as (http, url, engine, server):
            started = time.monotonic()
            idle = await http.ws_connect(url + "/api/chat")
            await handshake(idle)
            msg = await idle.receive()
            assert msg.data[0] == MessageKind.ERROR and msg.data[1:].decode().startswith("idle: no audio")
            assert (await idle.receive()).type == aiohttp.WSMsgType.CLOSE and idle.close_code == IDLE_CLOSE_CODE
            assert 0.5 <= time.monotonic() - started < 5
            await _wait_for(lambda: engine.active_sessions == 0 and server.open_connections == 0)
            nxt = await http.ws_connect(url + "/api/chat")  # the single slot is free again (not busy)
            await handshake(nxt)
            assert engine.active_sessions == 1
            await nxt.close()
    run(main())


def test_half_open_client_is_found_by_the_heartbeat():
    """A client that keeps its TCP connection but never answers pings (frozen tab, dead NAT) is
    closed after the heartbeat, although its idle timer alone would keep it."""
    async def main():
        opts = ServerOptions(idle_timeout_s=60, heartbeat_s=0.4, opus_workers=0)
        async with running_server(opts, slots=1) as (http, url, engine, server):
            frozen = await http.ws_connect(url + "/api/chat", autoping=False)
            await handshake(frozen)
            await _wait_for(lambda: engine.active_sessions == 0 and server.open_connections == 0, timeout=10)
            await frozen.close()
    run(main())


def test_foreign_origin_is_refused_and_own_or_allowed_origins_pass():
    async def main():
        async with running_server(ServerOptions(allow_origins=("https://app.example/",), opus_workers=0)) as (http, url, _, _):
            with pytest.raises(aiohttp.WSServerHandshakeError) as e:
                await http.ws_connect(url + "/api/chat", headers={"Origin": "https://evil.example"})
            assert e.value.status == 403
            # DNS rebinding: the page's "own" origin on a name that is not loopback
            port = url.rsplit(":", 1)[1]
            with pytest.raises(aiohttp.WSServerHandshakeError) as e:
                await http.ws_connect(url + "/api/chat", headers={"Origin": f"http://rebound.example:{port}",
                                                                  "Host": f"rebound.example:{port}"})
            assert e.value.status == 403
            for headers in ({"Origin": url}, {"Origin": "https://app.example"}, {}):  # own, allowed, CLI
                ws = await http.ws_connect(url + "/api/chat", headers=headers)
                await handshake(ws)
                await ws.close()
    run(main())


def test_empty_token_means_no_token():
    async def main():
        async with running_server(ServerOptions(token="", opus_workers=0)) as (http, url, _, _):
            status = await (await http.get(url + "/api/status")).json()
            assert status["token_required"] is False
            ws = await http.ws_connect(url + "/api/chat")
            await handshake(ws)
            await ws.close()
    run(main())


def test_client_is_told_when_its_input_is_dropped_and_faults_log_once_per_interval(caplog):
    async def main():
        opts = ServerOptions(notice_interval_s=60, opus_workers=0)
        async with running_server(opts, slots=1, max_backlog_s=1 / FRAME_RATE) as (http, url, engine, server):
            ws = await http.ws_connect(url + "/api/chat")
            await handshake(ws)
            for _ in range(40):  # a client can no longer flood the log
                await ws.send_str("hello")
                await ws.send_bytes(b"\x09x")
            for page in ogg_pages(speech_like(2.0, seed=2)):  # 25 frames at once; the backlog holds 1
                await ws.send_bytes(protocol.audio(page))
            notices = []
            while not notices:
                msg = await ws.receive()
                assert msg.type == aiohttp.WSMsgType.BINARY
                if msg.data[0] == MessageKind.METADATA:
                    notices.append(json.loads(msg.data[1:]))
            assert notices[0]["event"] == "input_dropped" and notices[0]["frames"] >= 1
            await ws.close()
            assert server.ignored_log.total == 80
    with caplog.at_level(logging.WARNING, logger="jmoshi_augment.runtime"):
        run(main())
    ignored = [r for r in caplog.records if "ignored" in r.getMessage()]
    dropped = [r for r in caplog.records if "dropped" in r.getMessage()]
    assert 1 <= len(ignored) <= 2 and 1 <= len(dropped) <= 3


def test_shutdown_with_an_active_session_is_fast_and_clean(tmp_path):
    """Ctrl-C with a client mid-stream: the client gets a close frame (1001, not 1006), the
    recording is complete and renamed, all within 2 s."""
    async def main():
        engine = Engine(tiny_model(), 1, SamplingOptions(seed=1)).start(warmup=False)
        ready = asyncio.get_running_loop().create_future()
        task = asyncio.create_task(serve(engine, ServerOptions(port=0, record_dir=tmp_path),
                                         on_ready=ready.set_result))
        port = await ready
        try:
            async with aiohttp.ClientSession() as http:
                ws = await http.ws_connect(f"http://127.0.0.1:{port}/api/chat")
                await handshake(ws)
                await talk(ws, speech_like(4 / FRAME_RATE, seed=3), expect_frames=2)
                for page in ogg_pages(speech_like(1.0, seed=4)):  # still streaming when we stop
                    await ws.send_bytes(protocol.audio(page))
                started = time.monotonic()
                task.cancel()
                with pytest.raises(asyncio.CancelledError):
                    await task
                took = time.monotonic() - started
                while (msg := await ws.receive()).type == aiohttp.WSMsgType.BINARY:
                    pass  # replies already on their way
                assert msg.type == aiohttp.WSMsgType.CLOSE and msg.data == SHUTDOWN_CLOSE_CODE
        finally:
            engine.stop()
        return took
    took = run(main())
    assert took < 2.0
    wavs = list(tmp_path.glob("*.wav"))
    assert len(wavs) == 1 and not list(tmp_path.glob("*.tmp-*"))
    data, _ = soundfile.read(wavs[0])
    assert data.shape[0] >= 2 * FRAME_SIZE and data.shape[0] % FRAME_SIZE == 0  # every consumed frame, in whole frames


def test_load_many_clients_come_and_go_while_one_streams(tmp_path):
    """One client streams 20 frames while 24 others connect (some busy), talk a little and leave,
    some abruptly. The streamer's recording has every frame it sent, in order (no hole); afterwards
    no session, connection, task or thread is left behind (no leak)."""
    n_frames = 20

    async def main():
        threads_before = threading.active_count()
        opts = ServerOptions(record_dir=tmp_path, opus_workers=2)
        async with running_server(opts, slots=3) as (http, url, engine, server):
            tasks_before = len(asyncio.all_tasks())
            streamer = await http.ws_connect(url + "/api/chat")
            await handshake(streamer)
            x = speech_like(n_frames / FRAME_RATE, seed=5)
            outcomes = {"served": 0, "busy": 0}

            async def visitor(i: int) -> None:
                await asyncio.sleep(0.05 * i)
                ws = await http.ws_connect(url + "/api/chat")
                first = await ws.receive()
                if first.data[:1] == bytes([MessageKind.ERROR]):
                    assert (await ws.receive()).type == aiohttp.WSMsgType.CLOSE
                    assert ws.close_code == BUSY_CLOSE_CODE
                    outcomes["busy"] += 1
                    return
                outcomes["served"] += 1
                for page in ogg_pages(speech_like(0.24, seed=100 + i))[: 1 + i % 3]:
                    await ws.send_bytes(protocol.audio(page))
                if i % 3 == 0:  # vanish without a close frame
                    ws._response.connection.transport.abort()
                await ws.close()

            async def stream() -> np.ndarray:
                reader_pcm, _ = await talk(streamer, x, expect_frames=n_frames - 1, timeout=100)
                return reader_pcm

            got, *_ = await asyncio.gather(stream(), *(visitor(i) for i in range(24)))
            await streamer.close()
            await _wait_for(lambda: engine.active_sessions == 0 and server.open_connections == 0, timeout=20)
            await asyncio.sleep(0.1)
            assert len(asyncio.all_tasks()) <= tasks_before
            assert outcomes["served"] >= 2 and outcomes["served"] + outcomes["busy"] == 24
            assert got.size >= (n_frames - 1) * FRAME_SIZE
        assert threading.active_count() <= threads_before + 1  # the engine thread is gone; workers shut down
        return outcomes

    run(main())
    recordings = sorted(tmp_path.glob("*.wav"), key=lambda p: p.stat().st_size)
    assert not list(tmp_path.glob("*.tmp-*"))
    data, _ = soundfile.read(recordings[-1], dtype="float32")  # the streamer's is the longest
    reference = _opus_roundtrip(speech_like(n_frames / FRAME_RATE, seed=5))  # what the server decodes
    # The streamer hung up once n_frames - 1 replies came, so the last frame may be unconsumed; what
    # was consumed is the decoded input itself, sample for sample: a lost or reordered frame would
    # shift everything after it.
    assert data.shape[0] >= (n_frames - 1) * FRAME_SIZE
    np.testing.assert_allclose(data[:, 1], reference[: data.shape[0]], atol=2e-4)


def _opus_roundtrip(pcm: np.ndarray) -> np.ndarray:
    """What the server decodes from a client's pages, as 16-bit PCM like the recording."""
    import sphn

    reader = sphn.OpusStreamReader(SAMPLE_RATE)
    out = np.concatenate([reader.append_bytes(p) for p in ogg_pages(pcm)])
    return np.round(np.clip(out, -1, 1) * 32767) / 32767
