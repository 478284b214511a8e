"""Failures planted inside Ray workers, for the Ray executor tests.

:func:`install` runs in every worker of the test's Ray instance (``worker_process_setup_hook``). It
wraps the wav writer: after writing the wav of a dialogue for which a file ``<dialogue id>.raise``
or ``<dialogue id>.exit`` exists in the folder named by ``$JMOSHI_TEST_FAULTS``, the attempt
claims that file (a rename, so exactly one attempt fails) and raises, or kills its worker process.
The unit is then left half-written, as after a real crash.
"""

from __future__ import annotations

import os
from pathlib import Path

FAULTS_ENV = "JMOSHI_TEST_FAULTS"
KINDS = ("raise", "exit")


def plant(folder: Path, dialogue_id: str, kind: str) -> Path:
    assert kind in KINDS
    path = folder / f"{dialogue_id}.{kind}"
    path.write_text("")
    return path


def claimed(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.glob("*-claimed"))


def install() -> None:
    from jmoshi_augment.augment.formats import wav_format

    original = wav_format.write_wav_dialogue

    def write_wav_dialogue(out_dir, rendering, *args, **kwargs):
        result = original(out_dir, rendering, *args, **kwargs)
        folder = os.environ.get(FAULTS_ENV)
        for kind in KINDS if folder else ():
            planted = Path(folder) / f"{rendering.dialogue_id}.{kind}"
            try:
                planted.rename(planted.with_name(planted.name + "-claimed"))
            except FileNotFoundError:
                continue
            if kind == "exit":
                os._exit(1)
            raise RuntimeError(f"injected failure after writing {rendering.id}")
        return result

    wav_format.write_wav_dialogue = write_wav_dialogue
