"""Content failures and environment failures are different things.

A dialogue is *rejected* (recorded in its unit, never retried) only for a reason that would recur
with the same input: text the script cannot speak, a render the backend refuses
(:class:`~jmoshi_augment.augment.speech.tts.base.RenderFailed`), every best-of-N candidate failing
its checks. Anything else a dialogue raises (I/O, memory, a model file, an onnxruntime or CUDA
error, a worker that died) is an *environment* failure: it fails the dialogue's unit, which is
then not recorded as finished, so the same command redoes exactly those units. The run goes on
with the other units, lists the failed ones one line each and exits non-zero
(:class:`UnitsFailed`). Tracebacks go to ``synth.log`` in the output folder (and to the terminal
with ``--debug``), never between the progress bars.
"""

from __future__ import annotations

import logging
import time
import traceback
from dataclasses import dataclass
from pathlib import Path

from jmoshi_augment.errors import JmoshiErrors, JmoshiError, first_line

logger = logging.getLogger(__name__)

LOG_NAME = "synth.log"
MAX_LINES = 20  # failed units listed on the terminal (a vanished file can fail every unit alike)
UNITS_FAILED_EXIT = 3  # exit code of a run that finished except for units failed by a passing fault


@dataclass(frozen=True)
class EnvironmentFailure:
    """Why a dialogue could not be made this time (a rerun may well succeed)."""

    dialogue_id: str
    reason: str  # one line
    traceback: str = ""  # for the log file

    @classmethod
    def of(cls, dialogue_id: str, e: BaseException) -> "EnvironmentFailure":
        reason = str(e) if isinstance(e, JmoshiError) else f"{type(e).__name__}: {first_line(e)}"
        return cls(dialogue_id, reason.splitlines()[0] if reason else type(e).__name__,
                   "".join(traceback.format_exception(type(e), e, e.__traceback__)))


class UnitFailed(RuntimeError):
    """Raised where a unit runs whole in one task (the Ray executor), so the executor's retries
    apply to an environment failure."""

    def __init__(self, unit: int, failure: EnvironmentFailure) -> None:
        super().__init__(f"unit {unit}: {failure.dialogue_id}: {failure.reason}")
        self.failure = failure


class UnitsFailed(JmoshiErrors):
    """Some units failed on an environment fault; the rest of the run is on disk."""

    exit_code = UNITS_FAILED_EXIT

    def __init__(self, out_dir: Path, failures: list[str], log: Path | None) -> None:
        where = f"; tracebacks in {log}" if log is not None else ""
        lines = [JmoshiError(line) for line in failures[:MAX_LINES]]
        if len(failures) > MAX_LINES:
            lines.append(JmoshiError(f"… and {len(failures) - MAX_LINES} more unit(s)" + (f" (all in {log})" if log else "")))
        lines.append(JmoshiError(f"{len(failures)} unit(s) failed and were not recorded as finished{where}; "
                                 "rerun the same command to redo them", path=out_dir))
        super().__init__(lines)


class RunLog:
    """``synth.log`` in the output folder, created on the first thing worth logging."""

    def __init__(self, out_dir: Path) -> None:
        self.path = Path(out_dir) / LOG_NAME
        self.used = False

    def write(self, headline: str, details: str = "") -> None:
        logger.debug("%s\n%s", headline, details.rstrip())  # the terminal shows it with --debug
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self.path.open("a", encoding="utf-8") as f:
            f.write(f"{time.strftime('%Y-%m-%d %H:%M:%S')} {headline}\n")
            if details:
                f.write(details.rstrip() + "\n")
        self.used = True
