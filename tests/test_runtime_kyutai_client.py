"""Kyutai's own command-line client (``moshi.client``, the installed package, unmodified) talks to
our server: it connects, streams Ogg-Opus, hears the model, shows its text, and ends cleanly when
the server shuts down. Only the sound card is replaced (``sounddevice`` is not installed here and
there is no audio device): a fake one plays a speech-like signal into the client's microphone
callback and collects what the client would play."""

from __future__ import annotations

import argparse
import asyncio
import importlib
import io
import sys
import threading
import types

import numpy as np
import pytest

from jmoshi_augment.constants import FRAME_SIZE
from jmoshi_augment.runtime.server import ServerOptions
from runtime_helpers import running_server, speech_like

pytest.importorskip("moshi.client_utils")
INPUT_FRAMES = 16


class _Stream:
    """What ``moshi.client`` uses of ``sounddevice.InputStream``/``OutputStream``: a context manager
    that calls ``callback(data, frames, time, status)`` every block from its own thread."""

    played: list[np.ndarray] = []

    def __init__(self, samplerate, channels, blocksize, callback, output: bool) -> None:
        self.blocksize, self.channels, self.callback, self.output = blocksize, channels, callback, output
        self._stop = threading.Event()

    def _run(self) -> None:
        if self.output:
            while not self._stop.wait(0.01):
                out = np.zeros((self.blocksize, self.channels), dtype=np.float32)
                self.callback(out, self.blocksize, None, None)
                _Stream.played.append(out[:, 0].copy())
        else:
            voice = speech_like(INPUT_FRAMES * self.blocksize / 24000, seed=9)
            for i in range(INPUT_FRAMES):
                if self._stop.wait(0.02):
                    return
                self.callback(voice[i * self.blocksize : (i + 1) * self.blocksize, None], self.blocksize, None, None)

    def __enter__(self):
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join(5)


def test_kyutai_command_line_client_converses_with_our_server(monkeypatch):
    fake = types.ModuleType("sounddevice")
    fake.InputStream = lambda **kw: _Stream(**kw, output=False)
    fake.OutputStream = lambda **kw: _Stream(**kw, output=True)
    monkeypatch.setitem(sys.modules, "sounddevice", fake)
    monkeypatch.delitem(sys.modules, "moshi.client", raising=False)
    client = importlib.import_module("moshi.client")
    monkeypatch.setitem(sys.modules, "moshi.client", client)  # forgotten again after the test
    from moshi.client_utils import RawPrinter

    _Stream.played = []
    text, log = io.StringIO(), io.StringIO()

    async def main():
        # a queue and per-session sampling enabled: neither may disturb a client that knows neither
        opts = ServerOptions(opus_workers=1, queue=2)
        async with running_server(opts, slots=1) as (http, url, engine, server):
            port = int(url.rsplit(":", 1)[1])
            args = argparse.Namespace(host="127.0.0.1", port=port, https=False, url=None)
            conversation = asyncio.create_task(client.run(RawPrinter(text, log), args))
            async with asyncio.timeout(120):
                while sum(np.abs(f).max() > 0 for f in _Stream.played) < 4:
                    assert not conversation.done(), log.getvalue()
                    await asyncio.sleep(0.05)
                assert engine.active_sessions == 1
            await server._on_shutdown(None)  # what Ctrl-C on the server does: close with 1001
            await asyncio.wait_for(conversation, 30)  # the client's receive loop ends on its own

    asyncio.run(main())
    heard = [f for f in _Stream.played if np.abs(f).max() > 0]
    assert len(heard) >= 4 and all(f.size == FRAME_SIZE for f in heard)
    assert "Lost connection" not in log.getvalue() and "Error" not in log.getvalue(), log.getvalue()
