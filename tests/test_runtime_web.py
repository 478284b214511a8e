"""The bundled page in headless Chromium with a fake microphone: it connects, sends Opus, plays the
reply. Needs `playwright` (Python) and a Chromium binary (Debian's `chromium` package); skipped
without them. Leaves a screenshot in tests/artifacts/runtime_web.png."""

from __future__ import annotations

import asyncio
import os
import shutil
import threading
from pathlib import Path

import pytest

from jmoshi_augment.runtime.engine import Engine, SamplingOptions
from jmoshi_augment.runtime.server import ChatServer, ServerOptions
from runtime_helpers import tiny_model

playwright = pytest.importorskip("playwright.sync_api")
CHROMIUM = os.environ.get("CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")
ARTIFACTS = Path(__file__).parent / "artifacts"


@pytest.fixture()
def server_url():
    from aiohttp import web

    engine = Engine(tiny_model(), 1, SamplingOptions(seed=3)).start(warmup=False)
    loop = asyncio.new_event_loop()
    started = threading.Event()
    state = {}

    async def run():
        runner = web.AppRunner(ChatServer(engine, ServerOptions(token="tok")).app())
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        state["runner"] = runner
        state["port"] = runner.addresses[0][1]
        started.set()

    thread = threading.Thread(target=lambda: (loop.run_until_complete(run()), loop.run_forever()), daemon=True)
    thread.start()
    assert started.wait(30)
    yield f"http://127.0.0.1:{state['port']}/?token=tok"
    asyncio.run_coroutine_threadsafe(state["runner"].cleanup(), loop).result(30)
    loop.call_soon_threadsafe(loop.stop)
    thread.join(10)
    engine.stop()


@pytest.mark.skipif(CHROMIUM is None, reason="no Chromium binary (apt-get install chromium)")
def test_page_talks_to_the_server_with_a_fake_microphone(server_url):
    with playwright.sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=CHROMIUM,
            args=["--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream",
                  "--autoplay-policy=no-user-gesture-required", "--no-sandbox"],
        )
        try:
            page = browser.new_page()
            errors: list[str] = []
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.goto(server_url)
            assert page.evaluate("window.jmoshi.state") == "idle"
            page.click("#start")
            page.wait_for_function("window.jmoshi.state === 'connected' || window.jmoshi.state === 'error'", timeout=30_000)
            page.wait_for_function(
                "window.jmoshi.state !== 'connected' || "
                "(window.jmoshi.stats.sentPages > 10 && window.jmoshi.stats.decodedFrames > 8)",
                timeout=120_000,
            )
            ARTIFACTS.mkdir(exist_ok=True)
            page.screenshot(path=str(ARTIFACTS / "runtime_web.png"), full_page=True)
            stats = page.evaluate("window.jmoshi.stats")
            state = page.evaluate("window.jmoshi.state")
            assert state == "connected", (state, page.text_content("#state"), errors)
            assert stats["receivedPages"] > 0 and stats["playedSeconds"] > 0.1
            assert "▁" not in page.evaluate("window.jmoshi.transcript")
            assert page.text_content("#sent") != "0"
            assert not errors
            page.click("#stop")
            assert page.evaluate("window.jmoshi.state") == "closed"
        finally:
            browser.close()


@pytest.mark.skipif(CHROMIUM is None, reason="no Chromium binary (apt-get install chromium)")
def test_page_names_a_wrong_token_instead_of_code_1006(server_url):
    with playwright.sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=CHROMIUM,
            args=["--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream", "--no-sandbox"],
        )
        try:
            page = browser.new_page()
            page.goto(server_url.replace("token=tok", "token=wrong"))
            page.click("#start")
            page.wait_for_function("window.jmoshi.state === 'error'", timeout=30_000)
            assert "access token" in page.text_content("#error")
            assert "1006" not in page.text_content("#state")
        finally:
            browser.close()
