"""`jmoshi-augment chat` stopped the way services are stopped: SIGTERM (systemd, Docker, Kubernetes)
takes the Ctrl-C path (clients told 1001, recordings finished), and no child process (Opus
workers, multiprocessing's resource tracker) outlives the server, even one killed with SIGKILL."""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import aiohttp
import pytest

from jmoshi_augment.constants import FRAME_RATE
from jmoshi_augment.runtime.server import SHUTDOWN_CLOSE_CODE
from runtime_helpers import handshake, speech_like, talk, tiny_model_dir

CLI = shutil.which("jmoshi-augment", path=str(Path(sys.executable).parent))


def _children(pid: int) -> set[int]:
    """Every descendant of ``pid`` (from /proc)."""
    parents: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            parents.setdefault(ppid, []).append(int(entry.name))
    out, todo = set(), [pid]
    while todo:
        for child in parents.get(todo.pop(), []):
            out.add(child)
            todo.append(child)
    return out


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"  # a zombie has exited; only its parent's bookkeeping is left


def _start_server(record_dir: Path) -> tuple[subprocess.Popen, int, list[str]]:
    proc = subprocess.Popen(
        [CLI, "chat", str(tiny_model_dir()), "--device", "cpu", "--port", "0", "--opus-workers", "2",
         "--idle-timeout", "60", "--record-dir", str(record_dir)],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        env={**os.environ, "NO_TORCH_COMPILE": "1"}, start_new_session=True,
    )
    lines: list[str] = []
    ready = threading.Event()
    port: list[int] = []

    def read() -> None:
        for line in proc.stdout:  # type: ignore[union-attr]
            lines.append(line)
            m = re.search(r"serving on http://127\.0\.0\.1:(\d+)", line)
            if m:
                port.append(int(m.group(1)))
                ready.set()
        ready.set()

    threading.Thread(target=read, daemon=True).start()
    if not ready.wait(120) or not port:
        proc.kill()
        raise AssertionError("the server did not start:\n" + "".join(lines))
    return proc, port[0], lines


def _wait_gone(pids: set[int], timeout: float) -> set[int]:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        left = {p for p in pids if _alive(p)}
        if not left:
            return left
        time.sleep(0.1)
    return {p for p in pids if _alive(p)}


@pytest.mark.skipif(CLI is None or not Path("/proc/self/stat").exists(), reason="needs the installed CLI and /proc")
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT, signal.SIGKILL], ids=["SIGTERM", "SIGINT", "SIGKILL"])
def test_stop_signal_closes_clients_and_leaves_no_child(tmp_path, sig):
    proc, port, lines = _start_server(tmp_path)
    try:
        async def main() -> int | None:
            async with aiohttp.ClientSession() as http:
                ws = await http.ws_connect(f"http://127.0.0.1:{port}/api/chat")
                await handshake(ws)
                await talk(ws, speech_like(4 / FRAME_RATE, seed=3), expect_frames=2)
                children = _children(proc.pid)
                assert len(children) >= 3, children  # two Opus workers and the resource tracker
                found.update(children)
                os.kill(proc.pid, sig)
                async with asyncio.timeout(20):
                    while (msg := await ws.receive()).type == aiohttp.WSMsgType.BINARY:
                        pass
                return ws.close_code

        found: set[int] = set()
        close_code = asyncio.run(main())
        assert proc.wait(20) == (-signal.SIGKILL if sig == signal.SIGKILL else 0)
        assert not _wait_gone(found, 5.0), "child processes outlived the server"
        if sig != signal.SIGKILL:  # the Ctrl-C path, whichever signal
            assert close_code == SHUTDOWN_CLOSE_CODE
            assert any(f"stopped ({sig.name})" in line for line in lines), "".join(lines)
            assert len(list(tmp_path.glob("*.wav"))) == 1 and not list(tmp_path.glob("*.tmp-*"))
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
