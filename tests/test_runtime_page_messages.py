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
