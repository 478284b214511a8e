"""Faults planted in a real synth run, for tests/test_faults.py.

A fault is a file ``<dialogue id>.<kind>`` in the folder named by ``$JMOSHI_TEST_FAULTS``; the
first attempt at that dialogue claims it (a rename, so exactly one attempt meets the fault) and:

- ``kill``: the worker process kills itself with SIGKILL while rendering (as the out-of-memory
  killer does); with ``$JMOSHI_TEST_REMOVE`` set, it first removes that file (a model file gone
  mid-run), so the worker that replaces it starts without it;
- ``raise``: the render raises an environment error (what onnxruntime raises on a broken model);
- ``refuse``: the backend refuses the render (RenderFailed: a content failure);
- ``enospc``: writing the dialogue's wav fails with ENOSPC (a full disk).

Each process that starts with hooks installed writes its pid to ``pids/`` in that folder, so a
test can check that no worker outlived its run. :func:`install` is called from
``tests/fault_site/sitecustomize.py`` in spawned workers, or directly in the test process.
"""

from __future__ import annotations

import errno
import os
import signal
from pathlib import Path

FAULTS_ENV = "JMOSHI_TEST_FAULTS"
REMOVE_ENV = "JMOSHI_TEST_REMOVE"
SITE = Path(__file__).resolve().parent / "fault_site"


def plant(folder: Path, dialogue_id: str, kind: str) -> None:
    assert kind in ("kill", "raise", "refuse", "enospc")
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{dialogue_id}.{kind}").write_text("")


def claimed(folder: Path) -> list[str]:
    return sorted(p.name.removesuffix("-claimed") for p in folder.glob("*-claimed"))


def _claim(dialogue_id: str, kind: str) -> bool:
    folder = os.environ.get(FAULTS_ENV)
    if not folder:
        return False
    planted = Path(folder) / f"{dialogue_id}.{kind}"
    try:
        planted.rename(planted.with_name(planted.name + "-claimed"))
    except FileNotFoundError:
        return False
    return True


def install(monkeypatch=None) -> None:
    """Wrap the synthesis and the wav writer; ``monkeypatch`` (in the test process) undoes it after
    the test."""
    from jmoshi_augment.augment.formats import wav_format
    from jmoshi_augment.augment.run import synthesize
    from jmoshi_augment.augment.speech.tts import RenderFailed

    folder = os.environ.get(FAULTS_ENV)
    if folder:
        (Path(folder) / "pids").mkdir(parents=True, exist_ok=True)
        (Path(folder) / "pids" / str(os.getpid())).write_text("")

    synthesize_dialogue = synthesize.synthesize_dialogue

    def faulty_synthesize(dialogue, recipe, backend):
        if _claim(dialogue.id, "kill"):
            if os.environ.get(REMOVE_ENV):
                Path(os.environ[REMOVE_ENV]).unlink()
            os.kill(os.getpid(), signal.SIGKILL)
        if _claim(dialogue.id, "raise"):
            raise RuntimeError("[ONNXRuntimeError] : 1 : FAIL : injected: cannot read the model")
        if _claim(dialogue.id, "refuse"):
            raise RenderFailed(f"{dialogue.id}: injected: the backend refuses this script")
        return synthesize_dialogue(dialogue, recipe, backend)

    patch = monkeypatch.setattr if monkeypatch is not None else setattr
    patch(synthesize, "synthesize_dialogue", faulty_synthesize)
    write_wav_dialogue = wav_format.write_wav_dialogue

    def faulty_write(out_dir, rendering, *args, **kwargs):
        if _claim(rendering.dialogue_id, "enospc"):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(out_dir))
        return write_wav_dialogue(out_dir, rendering, *args, **kwargs)

    patch(wav_format, "write_wav_dialogue", faulty_write)
