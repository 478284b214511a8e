"""The bundled page in headless Chromium with a fake microphone (a speech-like wav), served over
https with a self-signed certificate on a name that is not localhost (``chat.test``, mapped to
127.0.0.1 by Chromium's resolver rules): it connects, its meters move, it shows the delay, keeps
the conversation (stereo wav of the session's length, timed transcript), waits in the queue and
gets in when the slot frees, and explains an insecure page, a busy server and a blocked microphone.

Needs `playwright` (Python) and a Chromium binary (Debian's `chromium` package); skipped without
them. Leaves one screenshot per state in tests/artifacts/chat-*.png (docs/chat/ holds copies)."""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import threading
from pathlib import Path

import numpy as np
import pytest
import soundfile

from jmoshi_augment.runtime import tls
from jmoshi_augment.runtime.engine import Engine, SamplingOptions
from jmoshi_augment.runtime.server import ChatServer, ServerOptions
from runtime_helpers import speech_like, tiny_model

playwright = pytest.importorskip("playwright.sync_api")
CHROMIUM = os.environ.get("CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")
ARTIFACTS = Path(__file__).parent / "artifacts"
DOCS_SHOTS = Path(__file__).resolve().parents[1] / "docs" / "chat"
NAME = "chat.test"  # a made-up host name: the page is not on localhost, so only https makes it secure
pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="no Chromium binary (apt-get install chromium)")


@pytest.fixture(scope="module")
def ports(tmp_path_factory):
    """One server (1 slot, a queue of 1, token "tok") on two ports: https with a self-signed
    certificate for chat.test, and plain http."""
    from aiohttp import web

    certificate = tls.self_signed((NAME,), folder=tmp_path_factory.mktemp("tls"))
    engine = Engine(tiny_model(), 1, SamplingOptions(seed=3)).start(warmup=False)
    loop = asyncio.new_event_loop()
    started = threading.Event()
    state = {}

    async def run():
        opts = ServerOptions(token="tok", queue=1, queue_wait_s=60, opus_workers=0, allow_origins=("*",))
        runner = web.AppRunner(ChatServer(engine, opts).app())
        await runner.setup()
        for name, ctx in (("https", tls.context(certificate)), ("http", None)):
            site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=ctx)
            await site.start()
            state[name] = site._server.sockets[0].getsockname()[1]
        state["runner"] = runner
        started.set()

    thread = threading.Thread(target=lambda: (loop.run_until_complete(run()), loop.run_forever()), daemon=True)
    thread.start()
    assert started.wait(30)
    yield state
    asyncio.run_coroutine_threadsafe(state["runner"].cleanup(), loop).result(30)
    loop.call_soon_threadsafe(loop.stop)
    thread.join(10)
    engine.stop()


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    mic = tmp_path_factory.mktemp("mic") / "speech.wav"
    soundfile.write(mic, speech_like(4.0, 48000, seed=5), 48000, subtype="PCM_16")
    with playwright.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=[
            "--use-fake-device-for-media-stream", f"--use-file-for-fake-audio-capture={mic}",
            "--autoplay-policy=no-user-gesture-required", "--no-sandbox",
            f"--host-resolver-rules=MAP {NAME} 127.0.0.1", "--ignore-certificate-errors",
        ])
        yield browser
        browser.close()


def _page(browser, url: str, microphone: bool = True):
    context = browser.new_context(permissions=["microphone"] if microphone else [], accept_downloads=True)
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto(url)
    return page, errors


def _shot(page, state: str) -> None:
    """tests/artifacts/chat-STATE.png; with JMOSHI_DOCS_SCREENSHOTS=1 also docs/chat/STATE.png, cut to
    the page's column and reduced to 48 colours (~15 KB)."""
    ARTIFACTS.mkdir(exist_ok=True)
    path = ARTIFACTS / f"chat-{state}.png"
    page.screenshot(path=str(path), full_page=True)
    if os.environ.get("JMOSHI_DOCS_SCREENSHOTS") == "1":
        from PIL import Image

        image = Image.open(path).convert("RGB")
        pixels = np.asarray(image).astype(int)
        used = np.where((np.abs(pixels - pixels[-1, 0]).sum(axis=2) > 30).any(axis=1))[0]
        left = max(0, (image.width - 800) // 2)
        image = image.crop((left, 0, left + 800, min(image.height, used.max() + 24)))
        image.quantize(colors=48).save(DOCS_SHOTS / f"{state}.png", optimize=True)


def _state(page, *states: str, timeout: float = 30_000) -> str:
    page.wait_for_function(f"{list(states)}.includes(window.jmoshi.state)", timeout=timeout)
    return page.evaluate("window.jmoshi.state")


def test_https_conversation_meters_delay_downloads_and_queue(browser, ports, tmp_path):
    url = f"https://{NAME}:{ports['https']}/?token=tok"
    a, errors_a = _page(browser, url)
    assert a.evaluate("window.isSecureContext") and a.evaluate("window.jmoshi.state") == "idle"
    a.click("#start")
    assert _state(a, "connected", "error") == "connected", a.text_content("#error")
    a.wait_for_function(
        "window.jmoshi.stats.delay !== null && window.jmoshi.stats.decodedFrames > 20 && "
        "Math.max(...window.jmoshi.levels.input) > -50 && Math.max(...window.jmoshi.levels.output) > -80 && "
        "window.jmoshi.levels.input.length > 10", timeout=60_000)
    levels = a.evaluate("window.jmoshi.levels")
    for which in ("input", "output"):  # moving: the bars change from one reading to the next
        assert len(set(round(x, 1) for x in levels[which] if x > -100)) > 3, (which, levels[which])
    assert re.fullmatch(r"\d+\.\d\d", a.text_content("#delay"))
    assert 0 < float(a.text_content("#delay")) < a.evaluate("window.jmoshi.stats.sentSeconds") + 0.5
    assert a.text_content("#state") == "connected" and not a.is_enabled("#download-wav")
    assert float(a.text_content("#sent")) > 0.5 and a.evaluate("window.jmoshi.stats.sentSeconds") > 0.5
    _shot(a, "connected")

    b, errors_b = _page(browser, url)  # the only slot is taken: b waits with its place shown
    b.click("details.settings summary")
    b.fill("#audio_topk", "900")  # beyond the server's bound: clamped, and b is told so
    b.click("#start")
    assert _state(b, "queued", "error") == "queued"
    assert "number 1 in the queue" in b.text_content("#notice")
    assert b.input_value("#text_temperature") != "" and b.get_attribute("#audio_topk", "max") == "500"
    _shot(b, "queued")
    c, _ = _page(browser, url)  # the queue is full too: c hears "busy", once
    c.click("#start")
    assert _state(c, "busy", "error") == "busy"
    assert "already waiting" in c.text_content("#error") and c.text_content("#state") == "busy"
    _shot(c, "busy")

    a.click("#stop")  # a leaves: b gets in
    assert a.evaluate("window.jmoshi.state") == "closed"
    assert _state(b, "connected", "error") == "connected"
    b.wait_for_function("window.jmoshi.notices.some((n) => n.includes('audio_topk 900 -> 500'))", timeout=10_000)
    session_s = a.evaluate("(window.jmoshi.endedAt - window.jmoshi.connectedAt) / 1000")
    transcript = a.evaluate("window.jmoshi.transcript")
    assert "▁" not in transcript  # SentencePiece word marks never reach the page
    assert a.is_enabled("#download-wav") and a.is_enabled("#download-text")
    _shot(a, "closed")
    with a.expect_download() as download:
        a.click("#download-wav")
    wav = tmp_path / download.value.suggested_filename
    download.value.save_as(wav)
    audio, rate = soundfile.read(wav)
    assert rate == 24000 and audio.ndim == 2 and audio.shape[1] == 2
    assert abs(audio.shape[0] / rate - session_s) < 0.5, (audio.shape[0] / rate, session_s)
    assert np.abs(audio[:, 1]).max() > 0.05 and np.abs(audio[:, 0]).max() > 0  # you, and the model
    with a.expect_download() as download:
        a.click("#download-text")
    text = Path(download.value.path()).read_text(encoding="utf-8")
    assert text.startswith("# J-Moshi chat") and download.value.suggested_filename.endswith(".txt")
    body = "".join(re.sub(r"^\[\d\d:\d\d\.\d\d\] ", "", line) for line in text.splitlines()[1:])
    assert re.sub(r"\s", "", body) == re.sub(r"\s", "", transcript)

    a.click("#start")  # while a waits for a slot again, its last conversation stays on the page
    assert _state(a, "queued", "error") == "queued"
    assert a.evaluate("window.jmoshi.transcript") == transcript and a.is_enabled("#download-wav")
    assert a.evaluate("window.jmoshi.stats.sentSeconds") == 0  # the counters are this connection's
    a.click("#stop")
    b.click("#stop")
    assert not errors_a and not errors_b


def test_insecure_page_and_blocked_microphone_are_explained(browser, ports):
    page, _ = _page(browser, f"http://{NAME}:{ports['http']}/?token=tok")
    assert not page.evaluate("window.isSecureContext")
    assert page.evaluate("window.jmoshi.state") == "insecure" and not page.is_enabled("#start")
    assert "--ssl self-signed" in page.text_content("#error") and "ssh -L" in page.text_content("#error")
    _shot(page, "insecure")

    page, _ = _page(browser, f"https://{NAME}:{ports['https']}/?token=tok", microphone=False)
    page.click("#start")
    assert _state(page, "error") == "error"
    assert "microphone is blocked" in page.text_content("#error")
    assert "Permission denied" not in page.text_content("#error")
    _shot(page, "microphone-blocked")


def test_page_names_a_wrong_token_instead_of_code_1006(browser, ports):
    page, _ = _page(browser, f"https://{NAME}:{ports['https']}/?token=wrong")
    page.click("#start")
    assert _state(page, "error") == "error"
    assert "access token" in page.text_content("#error")
    assert "1006" not in page.text_content("#state")
