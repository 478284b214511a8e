"""report.html: files written for a real (small) synth run, partial/malformed folders, and the page
itself driven in headless Chromium through the DevTools protocol."""

from __future__ import annotations

import asyncio
import base64
import json
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import pytest

from jmoshi_augment.augment.report.build import (
    DATA_DIR,
    read_run,
    plan_reference,
    report_app,
    write_html_report,
)
from jmoshi_augment.errors import JmoshiError

REPO = Path(__file__).resolve().parents[1]
ARTIFACTS = REPO / "tests" / "artifacts"


# ------------------------------------------------------------------------------------ fixtures


@pytest.fixture(scope="module")
def sample_run(tmp_path_factory) -> Path:
    """Two dialogues of the bundled sample corpus through the real pipeline (OpenJTalk), one per unit."""
    from jmoshi_augment.augment.run.pipeline import run_synth
    from jmoshi_augment.recipe import load_recipe

    out = tmp_path_factory.mktemp("run") / "sample"
    recipe = load_recipe(REPO / "recipes" / "sample.yaml",
                         {"corpus.limit": 2, "corpus.filters.max_turns": 4, "workers": 1, "tts.backend": "openjtalk",
                          "output.dir": str(out), "output.shard_size": 1})
    run_synth(recipe, progress=False)
    return out


@pytest.fixture
def run_copy(sample_run: Path, tmp_path: Path) -> Path:
    dst = tmp_path / "copy"
    shutil.copytree(sample_run, dst)
    for p in (dst / "report.html", dst / DATA_DIR):
        shutil.rmtree(p, ignore_errors=True) if p.is_dir() else p.unlink(missing_ok=True)
    return dst


def load_js_data(path: Path) -> tuple[int, object]:
    """The (key, payload) of a ``JMR_page(k, ...)`` / ``JMR_detail(k, ...)`` data file."""
    m = re.fullmatch(r"JMR_(?:page|detail)\((\d+), (.*)\);\n", path.read_text(encoding="utf-8"), re.S)
    assert m, path
    return int(m.group(1)), json.loads(m.group(2))


def alignment_counts(run: Path, rid: str) -> tuple[int, int]:
    data = json.loads((run / "audio" / f"{rid}.json").read_text(encoding="utf-8"))["alignments"]
    return (sum(1 for *_, s in data if s == "SPEAKER_MAIN"), sum(1 for *_, s in data if s == "SPEAKER_OTHER"))


# -------------------------------------------------------------------------------- files on disk


def test_report_of_a_complete_run(run_copy: Path):
    path = write_html_report(run_copy)
    assert path == run_copy / "report.html"
    page = path.read_text(encoding="utf-8")
    units = [json.loads(p.read_text(encoding="utf-8")) for p in sorted((run_copy / "units").glob("*.json"))]
    ids = [e["id"] for u in units for e in u["renderings"]]
    assert len(ids) == 2
    assert 'id="problems"' not in page  # nothing is missing
    assert "corpus:" in page and "builtin:sample" in page  # the resolved recipe
    assert "mei_normal.htsvoice" in page  # models.json
    assert page.count('class="plot bars"') >= 6 and page.count('class="plot hist"') == 4
    assert "human reference" in page and "plan (recipe)" in page
    assert "https://" not in page.replace("https://github.com", "")  # nothing fetched from a CDN
    config = json.loads(re.search(r'<script id="jmr-config" type="application/json">(.*?)</script>', page, re.S).group(1))
    assert config["total"] == 2 and config["pages"] == 1 and config["corpora"] == ["sample"]

    _, rows = load_js_data(run_copy / DATA_DIR / "list-00000.js")
    assert [r["id"] for r in rows] == ids
    _, details = load_js_data(run_copy / DATA_DIR / "detail-00000.js")
    for row in rows:
        assert (run_copy / row["audio"]).is_file()
        d = details[row["id"]]
        words = d["words"]
        assert (sum(w[3] == 0 for w in words), sum(w[3] == 1 for w in words)) == alignment_counts(run_copy, row["id"])
        assert d["source_turns"] and d["script"] and row["main"] in ("A", "B")
        assert d["events"]["ipus"][0] and d["events"]["ipus"][1]


def test_paging_and_detail_chunks(run_copy: Path):
    write_html_report(run_copy, page_size=1, detail_chunk=1)
    data = run_copy / DATA_DIR
    assert sorted(p.name for p in data.iterdir()) == ["detail-00000.js", "detail-00001.js", "list-00000.js", "list-00001.js"]
    k, rows = load_js_data(data / "list-00001.js")
    assert k == 1 and len(rows) == 1 and rows[0]["chunk"] == 1
    _, details = load_js_data(data / "detail-00001.js")
    assert list(details) == [rows[0]["id"]]
    # a rewrite replaces the folder whole and leaves no temporary folder behind
    write_html_report(run_copy)
    assert sorted(p.name for p in data.iterdir()) == ["detail-00000.js", "list-00000.js"]
    assert not [p for p in run_copy.iterdir() if ".tmp-" in p.name or ".old-" in p.name]
    with pytest.raises(JmoshiError, match="page_size"):
        write_html_report(run_copy, page_size=0)


def test_partial_and_malformed_folder(run_copy: Path):
    units = sorted((run_copy / "units").glob("*.json"))
    first = json.loads(units[0].read_text(encoding="utf-8"))["renderings"][0]["id"]
    (run_copy / "report.json").unlink()
    (run_copy / "models.json").unlink()
    (run_copy / "audio" / f"{first}.wav").unlink()
    units[1].write_text('{"unit": 1, "renderings": [', encoding="utf-8")  # a crash mid-write elsewhere
    page = write_html_report(run_copy).read_text(encoding="utf-8")
    problems = re.search(r'<section id="problems".*?</section>', page, re.S).group(0)
    assert "report.json: missing" in problems
    assert "models.json: missing" in problems
    assert f"units/{units[1].name}: unreadable (JSONDecodeError" in problems
    assert "1 of 1 wav files missing" in problems
    _, rows = load_js_data(run_copy / DATA_DIR / "list-00000.js")
    assert len(rows) == 1 and rows[0]["audio"] is None and "no audio file" in rows[0]["warnings"]


def test_malformed_alignments_and_stats(run_copy: Path):
    unit_path = sorted((run_copy / "units").glob("*.json"))[0]
    unit = json.loads(unit_path.read_text(encoding="utf-8"))
    rid = unit["renderings"][0]["id"]
    (run_copy / "audio" / f"{rid}.json").write_text('{"alignments": [["x", 1.0]]}', encoding="utf-8")
    unit["renderings"][0]["stats"] = {"name": rid}
    unit["renderings"][0]["duration"] += 1.0
    unit_path.write_text(json.dumps(unit), encoding="utf-8")
    run = read_run(run_copy)
    row = next(r.row for r in run.renderings if r.row["id"] == rid)
    assert "alignments unreadable (ValueError)" in row["warnings"]
    assert "turn-taking stats malformed" in row["warnings"]
    assert any(re.fullmatch(r"audio is [\d.]+ s, record says [\d.]+ s", w) for w in row["warnings"])
    write_html_report(run_copy)  # and the page is still written


def test_empty_folder_and_plain_dataset(tmp_path: Path, sample_run: Path):
    empty = tmp_path / "empty"
    empty.mkdir()
    page = write_html_report(empty).read_text(encoding="utf-8")
    for missing in ("recipe.yaml: missing", "report.json: missing", "units/: no unit records", "no dialogues found"):
        assert missing in page
    # A moshi-finetune dataset made elsewhere: wavs + alignments + data.jsonl, nothing else.
    plain = tmp_path / "plain"
    shutil.copytree(sample_run / "audio", plain / "audio")
    shutil.copy(sample_run / "data.jsonl", plain / "data.jsonl")
    run = read_run(plain)
    assert len(run.renderings) == 2 and len(run.stats) == 2  # measured from the wavs
    assert all(r.detail["words"] and not r.row["warnings"] for r in run.renderings)


def test_missing_folder_and_bad_compare_are_errors(tmp_path: Path, sample_run: Path, monkeypatch, capsys):
    with pytest.raises(JmoshiError, match="no such output folder"):
        write_html_report(tmp_path / "nope")
    with pytest.raises(JmoshiError, match="--compare: no such file or folder"):
        write_html_report(sample_run, [tmp_path / "nope"])
    from jmoshi_augment import cli

    monkeypatch.setattr(sys, "argv", ["jmoshi-augment", "report", str(tmp_path / "nope")])
    with pytest.raises(SystemExit) as e:
        cli.main()
    assert e.value.code == 2
    assert capsys.readouterr().err.strip().endswith("nope: no such output folder")


def test_compare_with_another_run_and_recordings(run_copy: Path, sample_run: Path, tmp_path: Path):
    wavs = tmp_path / "recordings"
    wavs.mkdir()
    for p in sorted((sample_run / "audio").glob("*.wav"))[:1]:
        shutil.copy(p, wavs / p.name)
    page = write_html_report(run_copy, [sample_run, wavs]).read_text(encoding="utf-8")
    bars = re.search(r'<svg class="plot bars" data-metric="ipus_per_min".*?</svg>', page, re.S).group(0)
    for label in ("copy", sample_run.name, "recordings", "human reference"):
        assert f"{label}:" in bars  # one bar (with its <title>) per set
    assert "recordings (n=" in page  # the histograms include the measured recordings
    # a reference named like this run keeps its own bars (labelled by its path)
    twin = tmp_path / "twin" / "copy"
    shutil.copytree(sample_run, twin)
    page = write_html_report(run_copy, [twin]).read_text(encoding="utf-8")
    bars = re.search(r'<svg class="plot bars" data-metric="ipus_per_min".*?</svg>', page, re.S).group(0)
    assert "<title>copy:" in bars and f"<title>{twin}:" in bars
    notes = tmp_path / "notes.txt"
    notes.write_text("not audio", encoding="utf-8")
    with pytest.raises(JmoshiError, match="notes.txt: cannot read audio"):
        write_html_report(run_copy, [notes])


def test_plan_reference(run_copy: Path):
    run = read_run(run_copy)
    plan = plan_reference(run)
    recipe = json.loads((run_copy / "recipe.json").read_text(encoding="utf-8"))
    assert plan["overlapped_share"] == recipe["timing"]["overlap_prob"]
    planned = json.loads((run_copy / "report.json").read_text(encoding="utf-8"))["planned_events"]
    minutes = sum(r.row["duration"] for r in run.renderings) / 60
    assert plan["backchannels_per_min"] == pytest.approx(planned["backchannels"] / minutes, rel=1e-3)


def test_cli_report_command(run_copy: Path, monkeypatch, capsys):
    from jmoshi_augment import cli

    monkeypatch.setattr(sys, "argv", ["jmoshi-augment", "report", str(run_copy)])
    with pytest.raises(SystemExit) as e:
        cli.main()
    assert e.value.code in (0, None)
    assert capsys.readouterr().out.strip() == str(run_copy / "report.html")


# ------------------------------------------------------------------------------ in a browser


def chromium_path() -> str:
    for name in ("chromium", "chromium-browser", "google-chrome", "chrome"):
        if found := shutil.which(name):
            return found
    pytest.skip("headless Chromium not available (Debian: apt-get install -y chromium); browser checks skipped")


class Browser:
    """Headless Chromium driven over the DevTools protocol (aiohttp websocket)."""

    def __init__(self, exe: str) -> None:
        self.exe = exe

    async def __aenter__(self) -> "Browser":
        import aiohttp

        self.profile = tempfile.mkdtemp(prefix="jmr-chromium-")
        self.proc = subprocess.Popen(
            [self.exe, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
             "--no-first-run", f"--user-data-dir={self.profile}", "--remote-debugging-port=0",
             "--autoplay-policy=no-user-gesture-required", "--window-size=1280,1000", "about:blank"],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
        )
        url, deadline = None, time.monotonic() + 60
        while url is None and time.monotonic() < deadline:
            line = self.proc.stderr.readline()
            if not line and self.proc.poll() is not None:
                break
            if m := re.search(r"DevTools listening on ws://[^/]+:(\d+)/", line):
                url = f"http://127.0.0.1:{m.group(1)}/json/list"
        if url is None:
            self._stop()
            pytest.skip("headless Chromium did not start (no DevTools endpoint)")
        threading.Thread(target=self.proc.stderr.read, daemon=True).start()  # keep its pipe drained
        self.http = aiohttp.ClientSession()
        async with self.http.get(url) as r:
            page = next(t for t in await r.json() if t["type"] == "page")
        self.ws = await self.http.ws_connect(page["webSocketDebuggerUrl"], max_msg_size=0)
        self.n = 0
        return self

    async def send(self, method: str, **params):
        self.n += 1
        await self.ws.send_json({"id": self.n, "method": method, "params": params})
        while True:
            msg = await asyncio.wait_for(self.ws.receive_json(), 60)
            if msg.get("id") == self.n:
                assert "error" not in msg, msg
                return msg["result"]

    async def js(self, expr: str):
        r = await self.send("Runtime.evaluate", expression=expr, awaitPromise=True, returnByValue=True)
        assert "exceptionDetails" not in r, r["exceptionDetails"]
        return r["result"].get("value")

    async def open(self, url: str) -> None:
        await self.send("Page.enable")
        await self.send("Page.navigate", url=url)
        for _ in range(200):
            if await self.js("typeof JMR !== 'undefined' && document.readyState === 'complete'"):
                break
            await asyncio.sleep(0.05)
        await self.js("JMR.ready")

    async def until(self, expr: str, timeout: float = 15.0):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if value := await self.js(expr):
                return value
            await asyncio.sleep(0.05)
        raise AssertionError(f"timed out waiting for {expr}")

    async def screenshot(self, path: Path) -> None:
        r = await self.send("Page.captureScreenshot", format="png", captureBeyondViewport=True)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(base64.b64decode(r["data"]))

    def _stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        shutil.rmtree(self.profile, ignore_errors=True)

    async def __aexit__(self, *exc) -> None:
        await self.ws.close()
        await self.http.close()
        self._stop()


LANES = """({rows: document.querySelectorAll('#list tbody tr').length,
  count: document.getElementById('list-count').textContent,
  w0: document.querySelectorAll('#lane-0 .word').length, w1: document.querySelectorAll('#lane-1 .word').length,
  starts0: [...document.querySelectorAll('#lane-0 .word')].map(r => [Number(r.dataset.start), Number(r.getAttribute('x'))]),
  labels: [...document.querySelectorAll('#lane-1 .word-label')].map(t => t.textContent).join(''),
  source: document.querySelectorAll('#d-source li').length, script: document.querySelectorAll('#d-script li').length,
  duration: Number(document.getElementById('player-duration').dataset.seconds)})"""


def test_page_in_headless_chromium(run_copy: Path):
    exe = chromium_path()
    import soundfile as sf

    write_html_report(run_copy)
    _, rows = load_js_data(run_copy / DATA_DIR / "list-00000.js")
    target = rows[1]
    words = json.loads((run_copy / "audio" / f"{target['id']}.json").read_text(encoding="utf-8"))["alignments"]

    async def drive():
        async with Browser(exe) as b:
            await b.open((run_copy / "report.html").as_uri())
            assert await b.js("document.querySelectorAll('#list tbody tr').length") == 2
            await b.js(f"document.querySelector('#list tbody tr[data-id=\"{target['id']}\"]').click()")
            await b.until("document.getElementById('player-duration').dataset.seconds")
            got = await b.js(LANES)
            await b.screenshot(ARTIFACTS / "report.png")
            # the id filter narrows the list to one row
            await b.js("const f = document.getElementById('f-text'); f.value = " + json.dumps(rows[0]["id"])
                       + "; f.dispatchEvent(new Event('input'))")
            filtered = await b.until("document.getElementById('list-status').textContent.includes('match') && "
                                     "document.querySelectorAll('#list tbody tr').length")
            note = await b.js("document.getElementById('mode-note').textContent")
            return got, filtered, note

    got, filtered, note = asyncio.run(drive())
    assert got["rows"] == 2 and got["count"] == "(2)"
    assert (got["w0"], got["w1"]) == alignment_counts(run_copy, target["id"]) and got["w0"] > 0 and got["w1"] > 0
    for start, x in got["starts0"]:  # words sit at their aligned times (100 px/s)
        assert x == pytest.approx(start * 100, abs=0.1)
    assert got["labels"] == "".join(w for w, _, spk in words if spk == "SPEAKER_OTHER")
    unit_entry = next(e for u in read_run(run_copy).renderings for e in [u.detail] if e["id"] == target["id"])
    assert got["source"] == len(unit_entry["source_turns"]) and got["script"] == len(unit_entry["script"])
    info = sf.info(str(run_copy / target["audio"]))
    assert got["duration"] == pytest.approx(info.frames / info.samplerate, abs=0.01)
    assert filtered == 1
    assert "--serve" in note  # from disk, one-channel playback is explained, not silently broken
    assert (ARTIFACTS / "report.png").stat().st_size > 10_000


@pytest.fixture(scope="module")
def view_run(tmp_path_factory) -> Path:
    """One sample dialogue (OpenJTalk) and one acoustic view of it with every effect drawn."""
    from jmoshi_augment.augment.run.pipeline import run_synth
    from jmoshi_augment.recipe import load_recipe

    out = tmp_path_factory.mktemp("run") / "views"
    room = {"prob": 1.0, "rt60": [0.15, 0.25], "length": [3.0, 4.0], "width": [3.0, 4.0], "height": [2.4, 2.6], "bank_size": 1}
    recipe = load_recipe(REPO / "recipes" / "sample.yaml",
                         {"corpus.limit": 1, "corpus.filters.max_turns": 4, "workers": 1, "tts.backend": "openjtalk",
                          "output.dir": str(out), "output.formats": ["wav"], "acoustics.views": 1, "acoustics.room": room,
                          "acoustics.echo.prob": 1.0, "acoustics.noise.prob": 1.0, "acoustics.mic.codec_prob": 1.0})
    run_synth(recipe, progress=False)
    return out


VIEW = """({detail: !document.getElementById('d-view').hidden, sources: !document.getElementById('sources').hidden,
  view: document.getElementById('audio').src, clean: document.getElementById('audio-clean').src,
  clean_seconds: document.getElementById('audio-clean').duration,
  link: document.getElementById('d-view-of').textContent,
  params: Object.fromEntries([...document.querySelectorAll('#d-acoustics tr')].map(tr => [tr.cells[0].textContent, tr.cells[1].textContent])),
  tags: [...document.querySelectorAll('#list tbody tr')].map(tr => [tr.dataset.id, (tr.querySelector('.tag') || {}).textContent || null])})"""


def test_acoustic_view_plays_beside_its_clean_rendering(view_run: Path):
    exe = chromium_path()
    write_html_report(view_run)
    entries = {r.row["id"]: r for r in read_run(view_run).renderings}
    [vid] = [k for k in entries if k.endswith("-ac0")]
    record = json.loads(next((view_run / "units").glob("unit-*.json")).read_text(encoding="utf-8"))
    drawn = next(e for e in record["renderings"] if e["id"] == vid)["acoustics"]
    clean_id = drawn["view_of"]

    async def drive():
        async with Browser(exe) as b:
            await b.open((view_run / "report.html").as_uri())
            await b.js(f"document.querySelector('#list tbody tr[data-id=\"{vid}\"]').click()")
            await b.until("document.getElementById('player-duration').dataset.seconds && document.getElementById('audio-clean').duration > 0")
            got = await b.js(VIEW)
            await b.js("document.getElementById('audio').currentTime = 1.5")
            await b.js("JMR.setSource('clean')")
            switched = await b.js("({clean: JMR.playing() === JMR.players.clean, t: JMR.playing().currentTime,"
                                  " checked: document.querySelector('input[name=source]:checked').value})")
            await b.screenshot(ARTIFACTS / "report-view.png")
            await b.js("document.getElementById('d-view-of').click()")  # the link opens the clean rendering
            await b.until(f"JMR.state.current && JMR.state.current.id === {json.dumps(clean_id)}")
            clean_page = await b.js("({view: !document.getElementById('d-view').hidden, sources: !document.getElementById('sources').hidden})")
            return got, switched, clean_page

    got, switched, clean_page = asyncio.run(drive())
    # both players point at wavs on disk: the view's own and its clean rendering's
    assert got["detail"] and got["sources"] and got["link"] == clean_id
    assert got["view"] == (view_run / "audio" / f"{vid}.wav").as_uri()
    assert got["clean"] == (view_run / "audio" / f"{clean_id}.wav").as_uri() and (view_run / "audio" / f"{clean_id}.wav").is_file()
    assert got["clean_seconds"] == pytest.approx(entries[clean_id].row["duration"], abs=0.05)
    assert switched == {"clean": True, "t": pytest.approx(1.5, abs=0.05), "checked": "clean"}
    # the drawn parameters, as the unit record holds them
    p = got["params"]
    assert set(p) == {"room", "noise", "echo", "mic", "voice"}
    assert f"{drawn['room']['rt60_s']:.2f} s RT60" in p["room"]
    assert drawn["noise"]["kind"] in p["noise"] and f"{drawn['noise']['snr_db']:.1f} dB SNR" in p["noise"]
    assert f"{drawn['echo']['delay_ms']:.0f} ms, {drawn['echo']['gain_db']:+.1f} dB" in p["echo"]
    assert f"Opus at {drawn['mic']['codec_rate'] / 1000:g} kHz" in p["mic"]
    assert drawn["voice"]["target_sex"] in p["voice"]
    assert dict(got["tags"]) == {clean_id: None, vid: f"view of {clean_id}"}
    assert clean_page == {"view": False, "sources": False}
    assert len(read_run(view_run).stats) == 1  # turn-taking counts the dialogue once, not once per view


def _main_only_time(run: Path, rid: str) -> float:
    """Middle of the longest stretch where only the main channel speaks, without a break: voice
    activity before IPU bridging, since an IPU may hold silences up to 200 ms (a joined comma) and
    the player's level meter reads only the last few tens of milliseconds."""
    import soundfile as sf

    from jmoshi_augment.augment.analysis.stats import detect_activity

    entry = next(r for r in read_run(run).renderings if r.row["id"] == rid)
    audio, sr = sf.read(str(run / entry.row["audio"]), dtype="float32")
    main, other = detect_activity(audio.T, sr)
    best, best_len = 0.0, 0.0
    for s, e in main:
        for os_, oe in other:  # cut away the other channel's speech
            if os_ < e and oe > s:
                if os_ - s > best_len:
                    best, best_len = (s + os_) / 2, os_ - s
                s = max(s, oe)
        if e - s > best_len:
            best, best_len = (s + e) / 2, e - s
    assert best_len > 0.3
    return best


def test_player_channels_and_cursor_over_http(run_copy: Path):
    exe = chromium_path()
    from aiohttp import web

    write_html_report(run_copy, page_size=1)
    _, rows = load_js_data(run_copy / DATA_DIR / "list-00000.js")
    rid = rows[0]["id"]
    t = _main_only_time(run_copy, rid)
    level = """(async (mode, t) => { JMR.setMode(mode); const a = document.getElementById('audio');
      a.currentTime = t - 0.15; await JMR.state.graph.ctx.resume(); await a.play();
      await new Promise(r => setTimeout(r, 250));
      const m = JMR.state.graph.meter, buf = new Float32Array(m.fftSize); m.getFloatTimeDomainData(buf); a.pause();
      return Math.sqrt(buf.reduce((s, v) => s + v * v, 0) / buf.length); })"""

    async def drive():
        runner = web.AppRunner(report_app(run_copy))
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", 0).start()
        port = runner.addresses[0][1]
        try:
            async with aiohttp_session() as http:  # seeking needs Range requests
                async with http.get(f"http://127.0.0.1:{port}/{rows[0]['audio']}", headers={"Range": "bytes=0-99"}) as r:
                    assert r.status == 206 and len(await r.read()) == 100
            async with Browser(exe) as b:
                await b.open(f"http://127.0.0.1:{port}/report.html#d={rid}")
                await b.until("document.getElementById('player-duration').dataset.seconds")
                paging = await b.js("document.getElementById('page-info').textContent")
                levels = {m: await b.js(f"{level}('{m}', {t})") for m in ("main", "other", "stereo")}
                await b.js("document.getElementById('audio').currentTime = 0")
                await b.until("Number(document.getElementById('cursor').getAttribute('x1')) === 0")
                await b.js("JMR.toggle()")
                await asyncio.sleep(0.6)
                moved = await b.js("({x: Number(document.getElementById('cursor').getAttribute('x1')),"
                                   " t: document.getElementById('audio').currentTime})")
                return paging, levels, moved
        finally:
            await runner.cleanup()

    paging, levels, moved = asyncio.run(drive())
    assert paging == "page 1 of 2 (2 dialogues)"
    assert levels["main"] > 1e-3 and levels["stereo"] > 1e-3
    assert levels["other"] < levels["main"] / 20  # the other channel is silent at that moment
    assert moved["t"] > 0.2 and moved["x"] == pytest.approx(moved["t"] * 100, abs=15)


def aiohttp_session():
    import aiohttp

    return aiohttp.ClientSession()

