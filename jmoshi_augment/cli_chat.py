"""``jmoshi-augment chat``: its flags mapped onto :class:`~jmoshi_augment.runtime.launch.ModelSpec`
and :class:`~jmoshi_augment.runtime.server.ServerOptions` (registered on the app in :mod:`.cli`)."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from jmoshi_augment.errors import JmoshiError


def chat(
    model: str = typer.Argument(..., help="Model folder in the J-Moshi layout, or a Hugging Face repo id (e.g. nu-dialogue/j-moshi-ext)."),
    input: Optional[Path] = typer.Option(None, "--input", "-i", help="Offline mode: a wav (any rate) to answer, frame by frame."),
    output: Optional[Path] = typer.Option(None, "--output", "-o", help="Offline mode: stereo wav to write (0 model, 1 input)."),
    lm: Optional[str] = typer.Option(None, "--lm", help="Override the LM weights (path or hf://OWNER/REPO/FILE)."),
    mimi: Optional[str] = typer.Option(None, "--mimi", help="Override the Mimi weights."),
    tokenizer: Optional[str] = typer.Option(None, "--tokenizer", help="Override the SentencePiece model."),
    lora: Optional[str] = typer.Option(None, "--lora", help="LoRA weights to fuse into the LM."),
    device: str = typer.Option("cuda", "--device", help="cuda, cuda:N or cpu."),
    half: bool = typer.Option(False, "--half", help="float16 instead of bfloat16 on GPU (older GPUs)."),
    host: str = typer.Option("127.0.0.1", "--host", help="Address to bind; 0.0.0.0 exposes the model to the network."),
    port: int = typer.Option(8998, "--port", min=0, max=65535, help="Port to listen on (0: any free port, printed at start)."),
    slots: int = typer.Option(1, "--slots", min=1, help="Concurrent sessions, batched in one step."),
    token: Optional[str] = typer.Option(None, "--token", envvar="JMOSHI_CHAT_TOKEN", help="Require this access token (?token=... or Bearer)."),
    record_dir: Optional[Path] = typer.Option(None, "--record-dir", help="Save each session as a stereo wav (0 model, 1 user)."),
    temp: Optional[float] = typer.Option(None, "--temp", min=0.0, help="Audio temperature (0 = greedy, with --temp-text 0). Default: the checkpoint's lm_gen_config, else 0.8."),
    temp_text: Optional[float] = typer.Option(None, "--temp-text", min=0.0, help="Text temperature. Default: lm_gen_config, else 0.7."),
    top_k: Optional[int] = typer.Option(None, "--top-k", min=1, help="Audio top-k. Default: lm_gen_config, else 250."),
    top_k_text: Optional[int] = typer.Option(None, "--top-k-text", min=1, help="Text top-k. Default: lm_gen_config, else 25."),
    seed: Optional[int] = typer.Option(None, "--seed", help="Base of the per-session sampling seeds (session i gets SEED+i). Default 42424242."),
    allow_origin: Optional[list[str]] = typer.Option(None, "--allow-origin", help="Also let pages from this origin (e.g. https://app.example) open /api/chat; '*' = any (repeatable)."),
    idle_timeout: float = typer.Option(10.0, "--idle-timeout", min=0.1, help="Close a session that sends no audio for this many seconds."),
    heartbeat: float = typer.Option(10.0, "--heartbeat", min=0.1, help="Websocket ping interval in seconds (finds half-open clients)."),
    opus_workers: int = typer.Option(2, "--opus-workers", min=0, help="Processes for Opus encode/decode, ~1 core each (0 = on the event loop; ~2 ms per session-frame, so 4 for 48 sessions)."),
    ssl: Optional[str] = typer.Option(None, "--ssl", help="Serve https (browsers give the microphone only to https pages or localhost): a folder with cert.pem and key.pem (as moshi.server), or 'self-signed' to make and cache one."),
    ssl_name: Optional[list[str]] = typer.Option(None, "--ssl-name", help="With --ssl self-signed: a host name or IP the browser will open (repeatable; localhost and this machine's names are always in)."),
    queue: int = typer.Option(0, "--queue", min=0, help="Clients that may wait for a free slot, told their place (0 = refuse at once with 'busy')."),
    queue_wait: float = typer.Option(120.0, "--queue-wait", min=1.0, help="Longest wait in the queue, in seconds."),
) -> None:
    """Talk to a model: a websocket server with a bundled page, or offline over a wav file."""
    from jmoshi_augment.runtime.launch import ModelSpec, chat_offline, chat_server

    if (input is None) != (output is None):
        raise JmoshiError("offline mode needs both --input and --output", key="--input/--output")
    spec = ModelSpec(model, lm=lm, mimi=mimi, tokenizer=tokenizer, lora=lora, device=device, half=half)
    flags = dict(temp=temp, temp_text=temp_text, top_k=top_k, top_k_text=top_k_text, seed=seed)
    if input is not None and output is not None:
        text, summary = chat_offline(spec, input, output, flags)
        typer.echo(text)
        typer.echo(summary, err=True)
        return
    from jmoshi_augment.runtime.server import ServerOptions

    options = ServerOptions(host=host, port=port, token=token, record_dir=record_dir,
                            allow_origins=tuple(allow_origin or ()), idle_timeout_s=idle_timeout,
                            heartbeat_s=heartbeat, opus_workers=opus_workers, queue=queue, queue_wait_s=queue_wait)
    stopped_by = chat_server(spec, options, slots, flags, ssl=ssl, ssl_names=tuple(ssl_name or ()))
    if stopped_by:
        typer.echo(f"stopped ({stopped_by})", err=True)
