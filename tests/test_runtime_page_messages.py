"""What the chat page tells its user (runtime/web/messages.js), run under node: a busy server is
"busy" once, a wrong token says so instead of "closed: code 1006", idle and shutdown are explained."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from jmoshi_augment.runtime.server import BUSY_CLOSE_CODE, IDLE_CLOSE_CODE, SHUTDOWN_CLOSE_CODE

NODE = shutil.which("node")
MESSAGES_JS = Path(__file__).resolve().parents[1] / "runtime" / "web" / "messages.js"


def _describe(calls: list[tuple[str, list]]) -> list:
    script = (f"const m = require({json.dumps(str(MESSAGES_JS))});\n"
              f"const calls = {json.dumps(calls)};\n"
              "console.log(JSON.stringify(calls.map(([fn, args]) => m[fn](...args))));\n")
    out = subprocess.run([NODE, "-e", script], capture_output=True, text=True, timeout=30, check=True)
    return json.loads(out.stdout)


@pytest.mark.skipif(NODE is None, reason="no node binary")
def test_page_messages_name_the_cause_once():
    busy_text = f"busy: all {2} conversation slots are in use, try again later"  # what the server sends
    busy, idle, bad, wrong_token, origin, ok, lost_early, shutdown, idle_code, busy_code, dropped = _describe([
        ("describeServerError", [busy_text]),
        ("describeServerError", ["idle: no audio for 10 s, the session was closed"]),
        ("describeServerError", ["bad audio: expected Ogg-Opus pages (x)"]),
        ("describeStatus", [401]),
        ("describeStatus", [403]),
        ("describeStatus", [200]),
        ("describeClose", [1006, "", False]),
        ("describeClose", [SHUTDOWN_CLOSE_CODE, "server shutting down", True]),
        ("describeClose", [IDLE_CLOSE_CODE, "idle", True]),
        ("describeClose", [BUSY_CLOSE_CODE, "busy", False]),
        ("describeNotice", [{"event": "input_dropped", "frames": 3, "message": "0.24 s of your audio was dropped"}]),
    ])
    assert busy == {"state": "busy", "detail": "all 2 conversation slots are in use, try again later"}
    assert f"{busy['state']}: {busy['detail']}".count("busy") == 1  # the badge no longer reads "busy: busy: ..."
    assert idle["state"] == "closed" and idle["detail"].startswith("no audio for 10 s")
    assert bad == {"state": "error", "detail": "bad audio: expected Ogg-Opus pages (x)"}
    assert "access token" in wrong_token and "--allow-origin" in origin and ok is None
    assert lost_early == {"state": "error", "detail": "could not connect to the server"}
    assert shutdown["detail"] == "the server shut down" and idle_code["state"] == "closed"
    assert busy_code["state"] == "busy" and dropped == "0.24 s of your audio was dropped"


WEB = MESSAGES_JS.parent


def _node(script: str):
    prelude = "".join(f"Object.assign(globalThis, require({json.dumps(str(WEB / name))}));\n"
                      for name in ("messages.js", "meters.js", "recording.js"))
    out = subprocess.run([NODE, "-e", prelude + script], capture_output=True, text=True, timeout=30, check=True)
    return json.loads(out.stdout)


@pytest.mark.skipif(NODE is None, reason="no node binary")
def test_microphone_errors_queue_and_insecure_pages_are_explained_in_words():
    denied, missing, busy_mic, queued, sampling, help_text = _node("""
        console.log(JSON.stringify([
          describeMicError("NotAllowedError", "Permission denied"),
          describeMicError("NotFoundError", "Requested device not found"),
          describeMicError("NotReadableError", ""),
          describeNotice({event: "queued", place: 2, waiting: 3, message: "all 1 conversation slots are in use: you are number 2 in the queue"}),
          describeNotice({event: "sampling", sampling: {}, notes: [], message: ""}),
          insecureContextHelp({protocol: "http:", host: "gpu-box:8998", hostname: "gpu-box", port: "8998"}),
        ]));""")
    assert "blocked" in denied and "Permission denied" not in denied and "Connect again" in denied
    assert "no microphone" in missing and "another program" in busy_mic
    assert queued.endswith("number 2 in the queue") and sampling is None
    assert "--ssl self-signed" in help_text and "https://gpu-box:8998/" in help_text
    assert "ssh -L 8998:localhost:8998 gpu-box" in help_text


@pytest.mark.skipif(NODE is None, reason="no node binary")
def test_delay_is_the_age_of_the_user_audio_the_model_has_answered():
    delays = _node("""
        const m = new DelayMeter();
        const out = [];
        for (let i = 0; i < 10; i++) m.onSent(0.02, i * 0.02);          // 0.2 s sent by t = 0.18
        m.onReceived(0.08, 0.30); out.push(m.delay);                      // answers the send at t = 0.06
        m.onReceived(0.08, 0.40); out.push(m.delay);                      // ... the send at t = 0.14
        m.onSent(0.2, 0.5); m.onDropped(0.04);                            // 0.04 s will never be answered
        m.onReceived(0.02, 0.60); out.push(m.delay);                      // so this answers the send at t = 0.5
        console.log(JSON.stringify(out));""")
    assert delays == pytest.approx([0.24, 0.26, 0.1])  # 0.44 if the drop were not counted


@pytest.mark.skipif(NODE is None, reason="no node binary")
def test_recording_is_a_stereo_wav_of_the_session_length_and_a_timed_transcript(tmp_path):
    import base64
    import io

    import numpy as np
    import soundfile

    wav_b64, text = _node("""
        const r = new SessionRecording(24000);
        r.add(0, 0.5, new Float32Array(2400).fill(0.5));                  // the model before the user: dropped
        r.add(1, 10.0, new Float32Array(2400).fill(0.25));                // user from t = 10 s (sample 0)
        r.add(0, 10.2, new Float32Array(4800).fill(-0.5));                // model heard from 0.2 s to 0.4 s
        r.addText(10.3, "こんにちは"); r.addText(10.5, "。"); r.addText(12.0, "えっと");
        r.finish(11.5);                                                   // session: 1.5 s
        console.log(JSON.stringify([Buffer.from(r.wav()).toString("base64"), r.transcript("# header")]));""")
    data, rate = soundfile.read(io.BytesIO(base64.b64decode(wav_b64)))
    assert rate == 24000 and data.shape == (36000, 2)
    assert np.allclose(data[:2400, 1], 0.25, atol=1e-4) and np.allclose(data[2400:, 1], 0)
    assert np.allclose(data[:4800, 0], 0) and np.allclose(data[4800:9600, 0], -0.5, atol=1e-4)
    assert np.allclose(data[9600:, 0], 0)
    assert text == "# header\n[00:00.30] こんにちは。\n[00:02.00] えっと\n"
