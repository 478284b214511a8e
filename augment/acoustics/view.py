"""One augmented view of a stereo dialogue: the user's channel as a microphone hears it.

:func:`augment_view` is pure and seeded: the same stereo, channel, config and generator state give
the same bytes. Each effect draws from its own child generator, spawned in a fixed order whether
the effect happens or not, so switching one effect off in a recipe leaves every other draw as it
was (a benchmark can isolate one effect and still check the numbers the full view recorded).

Order, as sound reaches a recording: the user's voice (who speaks), the room around the talker,
the model's voice leaking from the loudspeaker, background noise, then the capture chain.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

from jmoshi_augment.augment.acoustics.echo import draw_echo, echo_signal
from jmoshi_augment.augment.acoustics.mic import capture
from jmoshi_augment.augment.acoustics.noise import add_at_snr, draw_noise
from jmoshi_augment.augment.acoustics.params import ViewParams
from jmoshi_augment.augment.acoustics.rooms import draw_room, reverberate
from jmoshi_augment.augment.acoustics.voice import change_voice, draw_voice, median_f0
from jmoshi_augment.recipe_acoustics import AcousticsConfig

EFFECTS = ("voice", "room", "echo", "noise", "mic")


@dataclass(frozen=True)
class Sources:
    """What a view may draw from besides its own dialogue: the run's seed (which bank of simulated
    rooms), the files of the user's folders, and other dialogues' speech for babble."""

    seed: int = 0
    rir_files: tuple[str, ...] = ()
    noise_files: tuple[str, ...] = ()
    babble: tuple[tuple[str, np.ndarray], ...] = ()  # (name, mono 24 kHz speech) of other dialogues


def augment_view(stereo: np.ndarray, user_channel: int, cfg: AcousticsConfig, rng: np.random.Generator,
                 sources: Sources = Sources(), *, only: Sequence[str] | None = None) -> tuple[np.ndarray, ViewParams]:
    """``stereo`` (float32 [2, T]) with channel ``user_channel`` augmented; the other channel is
    returned as the same array content. ``only``: apply just these effects (for measurement);
    the draws are those of the full view."""
    if stereo.ndim != 2 or stereo.shape[0] != 2:
        raise ValueError(f"expected stereo audio [2, T], got shape {stereo.shape}")
    on = set(EFFECTS if only is None else only)
    streams = dict(zip(EFFECTS, rng.spawn(len(EFFECTS))))
    user = stereo[user_channel].astype(np.float32)
    model = stereo[1 - user_channel]
    drawn: dict[str, object] = {}

    r = streams["voice"]
    coin = r.random() < cfg.voice.prob
    source_f0 = median_f0(user) if coin and "voice" in on else None
    if source_f0 is not None:
        drawn["voice"] = draw_voice(r, cfg.voice, source_f0)
        user = change_voice(user, drawn["voice"])

    r = streams["room"]
    room = draw_room(r, cfg.room, sources.seed, cfg.rir_dir, sources.rir_files) if r.random() < cfg.room.prob else None
    if room is not None and "room" in on:
        drawn["room"] = room.draw
        user = reverberate(user, room.h)

    speech = user  # the noise's SNR refers to the user's voice alone, not to the echo
    r = streams["echo"]
    if r.random() < cfg.echo.prob and "echo" in on:
        echo = draw_echo(r, cfg.echo, room_available=room is not None)
        drawn["echo"] = echo
        user = user + echo_signal(model, echo, room.h if room is not None else None)

    r = streams["noise"]
    if r.random() < cfg.noise.prob and "noise" in on:
        noise, draw = draw_noise(r, cfg.noise, len(user), babble_pool=sources.babble,
                                 noise_dir=cfg.noise_dir, noise_files=sources.noise_files)
        drawn["noise"] = draw
        user = add_at_snr(user, noise, draw.snr_db, reference=speech)

    if "mic" in on:
        user, drawn["mic"] = capture(user, cfg.mic, streams["mic"])

    out = np.empty_like(stereo, dtype=np.float32)
    out[1 - user_channel] = model
    out[user_channel] = user
    return out, ViewParams(user_channel=user_channel, **drawn)  # type: ignore[arg-type]
