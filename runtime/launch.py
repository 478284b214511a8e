"""``jmoshi-augment chat`` behind its flags: load a model once, then answer a wav file offline or
serve the websocket page. The CLI only maps flags onto :class:`ModelSpec` and the server options;
sampling flags override the checkpoint's own ``lm_gen_config``.

Everything that can fail on the user's input (flag combinations, the input wav) fails before
the model load, which takes minutes for a 7B model.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from jmoshi_augment.constants import SAMPLE_RATE

if TYPE_CHECKING:
    from jmoshi_augment.runtime.models import LoadedModel
    from jmoshi_augment.runtime.server import ServerOptions


@dataclass(frozen=True)
class ModelSpec:
    """Where the model comes from and where it runs (``chat MODEL --lm/--mimi/... --device``)."""

    model: str  # a J-Moshi-layout folder or a Hugging Face repo id
    lm: str | None = None
    mimi: str | None = None
    tokenizer: str | None = None
    lora: str | None = None
    device: str = "cuda"
    half: bool = False  # float16 instead of bfloat16 on a GPU

    def load(self) -> "LoadedModel":
        import torch

        from jmoshi_augment.runtime.models import load_model

        dtype = (torch.float16 if self.half else torch.bfloat16) if self.device.startswith("cuda") else None
        return load_model(self.model, device=self.device, dtype=dtype, lm=self.lm, mimi=self.mimi,
                          tokenizer=self.tokenizer, lora=self.lora)


def chat_offline(spec: ModelSpec, input: Path, output: Path, flags: dict[str, Any]) -> tuple[str, str]:
    """Answer ``input`` frame by frame and write the stereo result; returns the model's text and a
    one-line summary."""
    from jmoshi_augment.runtime.engine import SamplingOptions
    from jmoshi_augment.runtime.offline import read_input, run_offline, write_output

    SamplingOptions.resolve(None, **flags)  # bad flag combinations fail before the model load
    pcm = read_input(input, SAMPLE_RATE)  # so does a bad file
    loaded = spec.load()
    result = run_offline(loaded, pcm, SamplingOptions.resolve(loaded.lm_gen_config, **flags))
    write_output(output, result, loaded.sample_rate)
    summary = (f"{output}: {result.stereo.shape[0] / loaded.sample_rate:.2f} s stereo (0 model, 1 input), "
               f"real-time factor {result.real_time_factor:.2f}")
    return result.text, summary


def chat_server(spec: ModelSpec, options: "ServerOptions", slots: int, flags: dict[str, Any],
                ssl: str | None = None, ssl_names: tuple[str, ...] = ()) -> str | None:
    """Serve until stopped; returns the signal that stopped it (SIGINT or SIGTERM: every client got
    a close frame and every recording is finished by then), or None. ``ssl``: a folder with
    cert.pem and key.pem, or ``self-signed`` (made for ``ssl_names`` and this machine's names)."""
    import logging

    from jmoshi_augment.runtime import tls
    from jmoshi_augment.runtime.engine import Engine, SamplingOptions
    from jmoshi_augment.runtime.serving import serve

    SamplingOptions.resolve(None, **flags)
    context = None
    if ssl is not None:  # a bad certificate folder fails before the model load
        certificate = tls.resolve(ssl, options.host, ssl_names)
        context = tls.context(certificate)
        logging.getLogger(__name__).info(
            "TLS certificate %s (SHA-256 %s)%s", certificate.cert, certificate.fingerprint,
            f" for {', '.join(certificate.names)}" if certificate.names else "")
    loaded = spec.load()
    engine = Engine(loaded, slots, SamplingOptions.resolve(loaded.lm_gen_config, **flags),
                    max_top_k=options.sampling_bounds.top_k[1])
    engine.start()
    try:
        return asyncio.run(serve(engine, options, ssl_context=context, stop_on_signals=True))
    except KeyboardInterrupt:  # a second Ctrl-C during the shutdown
        return "SIGINT"
    finally:
        engine.stop()
