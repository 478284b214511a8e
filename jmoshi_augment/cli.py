"""The ``jmoshi-augment`` command line. Thin: it maps flags onto typed options and calls the
library; every user-facing failure is a :class:`JmoshiError`, printed as one line (exit code 2)."""

from __future__ import annotations

import logging
import sys
from pathlib import Path
from typing import Optional

import typer

from jmoshi_augment import __version__
from jmoshi_augment.cli_chat import chat
from jmoshi_augment.errors import JmoshiError

app = typer.Typer(
    help="Japanese full-duplex spoken dialogue: text corpora → two-speaker overlapping speech → "
    "Moshi tokens and training shards, and a streaming chat runtime.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
corpora_app = typer.Typer(help="List the supported corpora and export them to JSONL.", no_args_is_help=True)
recipe_app = typer.Typer(help="Validate recipes.", no_args_is_help=True)
shards_app = typer.Typer(help="Inspect and verify written training data.", no_args_is_help=True)
app.add_typer(corpora_app, name="corpora")
app.add_typer(recipe_app, name="recipe")
app.add_typer(shards_app, name="shards")

_state = {"debug": False}


def _version(value: bool) -> None:
    if value:
        typer.echo(f"jmoshi-augment {__version__}")
        raise typer.Exit()


@app.callback()
def _main(
    debug: bool = typer.Option(False, "--debug", help="Show tracebacks and debug logs."),
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True, help="Print the version."),
) -> None:
    _state["debug"] = debug
    logging.basicConfig(
        level=logging.DEBUG if debug else logging.INFO,
        format="%(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )


# ---------------------------------------------------------------------------------------- corpora


@corpora_app.command("list")
def corpora_list() -> None:
    """Show every corpus loader: name, description and what PATH to pass."""
    from rich.console import Console
    from rich.table import Table

    from jmoshi_augment.corpora import list_corpora

    table = Table("name", "description", "PATH to pass")
    for info in list_corpora():
        table.add_row(info.name, info.description, info.expected_input)
    Console(width=160).print(table)


@corpora_app.command("export")
def corpora_export(
    name: str = typer.Argument(..., help="Corpus name (see `corpora list`)."),
    path: Path = typer.Argument(..., help="Corpus file or folder, as published."),
    output: Path = typer.Option(..., "-o", "--output", help="JSONL file to write (one dialogue per line)."),
    limit: Optional[int] = typer.Option(None, "--limit", min=1, help="Stop after N dialogues."),
) -> None:
    """Read a corpus and write it as generic JSONL; prints dialogue, turn and character counts."""
    from jmoshi_augment.corpora import SkipCounts, load_corpus
    from jmoshi_augment.corpora.dialogue import write_jsonl
    from jmoshi_augment.io import atomic_output

    skips = SkipCounts()
    n_dialogues = n_turns = n_chars = 0
    with atomic_output(output, "w") as f:
        for d in write_jsonl(load_corpus(name, path, limit=limit, skips=skips), f):
            n_dialogues += 1
            n_turns += len(d.turns)
            n_chars += d.num_chars
    typer.echo(f"{output}: {n_dialogues} dialogues, {n_turns} turns, {n_chars} characters")
    for line in skips.lines():
        typer.echo(line, err=True)


# ----------------------------------------------------------------------------------------- recipe


@recipe_app.command("check")
def recipe_check(
    recipes: list[Path] = typer.Argument(..., help="Recipe YAML files."),
    show: bool = typer.Option(False, "--show", help="Print the resolved recipe (all defaults filled in)."),
    schema_only: bool = typer.Option(
        False, "--schema-only", help="Only keys and types: do not look at the corpus, models, voices or output folder."
    ),
    endpoint: bool = typer.Option(False, "--endpoint", help="Also check that the rewrite endpoint answers (network)."),
) -> None:
    """Validate recipes and everything they name: keys and types, the corpus (its loader reads the
    first dialogue), the TTS backend and its options, voices and prompts, model files, ASR folder,
    rewrite prompt, and the output folder. Every problem is printed, one line each (exit code 2)."""
    from jmoshi_augment.augment.run.preflight import check_recipe
    from jmoshi_augment.errors import JmoshiErrors
    from jmoshi_augment.recipe import load_recipe

    problems: list[JmoshiError] = []
    for path in recipes:
        try:
            recipe = load_recipe(path)
        except JmoshiErrors as e:
            problems.extend(e.errors)
            continue
        except JmoshiError as e:
            problems.append(e)
            continue
        found = [] if schema_only else check_recipe(recipe, endpoint=endpoint)
        problems.extend(found)
        if not found:
            typer.echo(f"{path}: ok ({recipe.corpus.name}, tts={recipe.tts.backend}, formats={','.join(recipe.output.formats)})")
        if show:
            typer.echo(recipe.to_yaml())
    if problems:
        raise JmoshiErrors(problems) if len(problems) > 1 else problems[0]


# ------------------------------------------------------------------------------------------ synth


def _parse_overrides(pairs: list[str]) -> dict[str, object]:
    import yaml

    out: dict[str, object] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise JmoshiError(f"--set expects KEY=VALUE (e.g. corpus.limit=10), got {pair!r}")
        out[key.strip()] = yaml.safe_load(value)
    return out


@app.command()
def synth(
    recipe_path: Path = typer.Argument(..., metavar="RECIPE", help="Recipe YAML (see recipes/)."),
    workers: Optional[int] = typer.Option(None, "--workers", "-j", min=1, help="Worker processes (overrides the recipe)."),
    limit: Optional[int] = typer.Option(None, "--limit", min=1, help="Stop after N dialogues (overrides corpus.limit)."),
    corpus_path: Optional[str] = typer.Option(None, "--corpus-path", help="Corpus file/folder (overrides corpus.path)."),
    out: Optional[Path] = typer.Option(None, "--out", "-o", help="Output folder (overrides output.dir)."),
    overrides: list[str] = typer.Option([], "--set", help="Override any recipe key: --set timing.overlap_prob=0.4"),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bar."),
    executor: str = typer.Option(
        "local", "--executor", help="local: worker processes on this machine; ray: one Ray task per unit "
        "(shard) on a Ray cluster, output.dir shared by all nodes (needs the package's ray extra).",
    ),
    ray_address: Optional[str] = typer.Option(
        None, "--ray-address", help="Ray cluster to join with --executor ray: auto, HOST:6379 or ray://HOST:10001 "
        "(default: RAY_ADDRESS, else a new local Ray).",
    ),
) -> None:
    """Run a recipe: corpus → spoken script → two-voice TTS → turn-taking plan → stereo wav + alignments (+ tokens, shards) → report.

    Reruns of the same recipe resume where a killed run stopped.
    """
    from jmoshi_augment.augment.run.pipeline import run_synth
    from jmoshi_augment.recipe import load_recipe

    if executor not in ("local", "ray"):
        raise JmoshiError(f"--executor must be local or ray, got {executor!r}")
    if ray_address is not None and executor != "ray":
        raise JmoshiError("--ray-address needs --executor ray")

    sets = _parse_overrides(overrides)
    if workers is not None:
        sets["workers"] = workers
    if limit is not None:
        sets["corpus.limit"] = limit
    if corpus_path is not None:
        sets["corpus.path"] = str(Path(corpus_path).resolve()) if not corpus_path.startswith("builtin:") else corpus_path
    if out is not None:
        sets["output.dir"] = str(out.resolve())
    recipe = load_recipe(recipe_path, sets)
    try:
        if executor == "ray":
            from jmoshi_augment.augment.run.executor_ray import run_synth_ray

            summary = run_synth_ray(recipe, address=ray_address, progress=not quiet)
        else:
            summary = run_synth(recipe, progress=not quiet)
    except KeyboardInterrupt:
        # finished units are on disk (each record written last, atomically); typer would exit silently
        typer.echo("interrupted; rerun the same command to resume", err=True)
        raise typer.Exit(130) from None
    r = summary.report
    typer.echo(
        f"{summary.out_dir}: {r['renderings']} dialogues rendered ({r['hours'] * 60:.1f} min of audio), "
        f"{len(r['rejected'])} rejected, {summary.units_resumed} units resumed from an earlier run"
    )
    tt = r.get("turn_taking") or {}
    if tt:
        from jmoshi_augment.augment.analysis.stats import HUMAN_REFERENCE

        pairs = [f"{k} {tt[k]:.3g} (human {v:.3g})" for k, v in HUMAN_REFERENCE.items() if isinstance(tt.get(k), (int, float))]
        typer.echo("turn-taking: " + ", ".join(pairs))
    typer.echo(f"report: {summary.out_dir / 'report.html'}")

@app.command("acoustics")
def acoustics_cmd(run_dir: Path = typer.Argument(..., help="A finished synth run with the wav format (its clean stems)."),
                  recipe: Path = typer.Option(..., "--recipe", "-r", help="Recipe whose acoustics: (views > 0) and formats apply."),
                  out: Optional[Path] = typer.Option(None, "--out", "-o", help="Where the views go (default RUN_DIR/acoustics)."),
                  quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bar.")) -> None:
    """New augmented views of a finished run's user channels (room, noise, echo, mic, voice), without rendering speech again."""
    from jmoshi_augment.augment.acoustics.rerun import reaugment_run, summary_line
    from jmoshi_augment.recipe import load_recipe

    typer.echo(summary_line(reaugment_run(run_dir, load_recipe(recipe), out, progress=not quiet)))


# ------------------------------------------------------------------------------------------ stats


@app.command("stats")
def stats_cmd(
    paths: list[Path] = typer.Argument(..., help="Stereo wavs, folders of them (recursive) or data.jsonl manifests."),
    compare: Optional[list[Path]] = typer.Option(
        None, "--compare", help="Another set to compare with (repeatable; each a file, folder or manifest)."
    ),
    out: Optional[Path] = typer.Option(None, "--out", help="Write stats.md/.csv/.json and PNG plots here."),
    name: str = typer.Option("data", "--name", help="Label of the PATH set in tables and plots."),
) -> None:
    """Turn-taking statistics of stereo dialogue audio (dGSLM: IPUs, pauses, gaps, within/between overlaps), beside the human reference.

    PATH: wav files, folders of them, or data.jsonl manifests; channel 0 = main, 1 = other.
    Several PATHs pool into one set.
    """
    from rich.console import Console
    from rich.table import Table

    from jmoshi_augment.augment.analysis.stats import analyze_paths, summarize, write_stats_files
    from jmoshi_augment.augment.analysis.stats_files import summary_rows

    sets = {name: list(analyze_paths(paths))}
    for other in compare or []:
        label = other.name if other.name not in sets else str(other)
        sets[label] = list(analyze_paths([other]))
    table = Table("metric", *sets, "human reference")
    for row in summary_rows({n: summarize(s) for n, s in sets.items()}):
        table.add_row(*row)
    Console(width=160).print(table)
    if out is not None:
        md = write_stats_files(out, sets[name], {n: s for n, s in sets.items() if n != name}, name=name)
        typer.echo(f"wrote {md}", err=True)


# ----------------------------------------------------------------------------------------- shards


@shards_app.command("inspect")
def shards_inspect(
    shard: Path = typer.Argument(..., help="A .tar token shard or a J-Moshi .parquet shard."),
    key: Optional[str] = typer.Option(None, "--key", help="Dialogue id to show (default: the first)."),
    tokenizer: Optional[str] = typer.Option(None, "--tokenizer", help="SentencePiece model to show pieces instead of ids."),
    all_frames: bool = typer.Option(False, "--all-frames", help="Print every frame, not only frames holding a token."),
    decode: Optional[Path] = typer.Option(None, "--decode", help="Decode the codes to this stereo wav with Mimi."),
    mimi: Optional[str] = typer.Option(None, "--mimi", help="Mimi weights for --decode (local path or hf://REPO/FILE)."),
    random_mimi: bool = typer.Option(False, "--random-mimi", help="Decode with a randomly initialised Mimi (tests only)."),
    list_ids: bool = typer.Option(False, "--list", help="Only list the dialogue ids in the shard."),
) -> None:
    """Print a dialogue's text streams frame by frame (pieces shown without ▁), optionally decode its audio."""
    from jmoshi_augment.augment.formats.inspect_shard import decode_audio, load_shard, pick, text_frames, write_decoded

    if list_ids:
        for item, _ in load_shard(shard):
            typer.echo(item.id)
        return
    if decode is not None and (mimi is None) == (not random_mimi):
        raise JmoshiError("--decode needs exactly one of --mimi PATH or --random-mimi")
    sp = None
    if tokenizer is not None:
        from jmoshi_augment.checkpoints import load_text_tokenizer

        sp = load_text_tokenizer(tokenizer)
    item, names, _ = pick(shard, key)
    for line in text_frames(item, names, sp, all_frames=all_frames):
        typer.echo(line)
    if decode is not None:
        from jmoshi_augment.augment.types import SAMPLE_RATE
        from jmoshi_augment.checkpoints import load_mimi

        model = load_mimi(mimi, num_codebooks=item.codes.shape[1], random_weights=random_mimi)
        write_decoded(decode, decode_audio(item, model), SAMPLE_RATE)
        typer.echo(f"wrote {decode} ({names[0]} left, {names[1]} right)", err=True)


@shards_app.command("verify")
def shards_verify(
    path: Path = typer.Argument(..., help="A tar/parquet shard, a wav, or an output folder (searched recursively)."),
    tokenizer: Optional[str] = typer.Option(None, "--tokenizer", help="SentencePiece model: check text ids against its vocabulary."),
    vocab_size: Optional[int] = typer.Option(None, "--vocab-size", min=1, help="Text vocabulary size, without --tokenizer."),
    card: int = typer.Option(2048, "--card", min=1, help="Mimi codebook size."),
) -> None:
    """Re-read outputs and check shapes, dtypes, id ranges and text/audio lengths per dialogue.
    Exit code 1 when problems are found."""
    from jmoshi_augment.augment.formats.verify import verify_files

    sp = None
    if tokenizer is not None:
        from jmoshi_augment.checkpoints import load_text_tokenizer

        sp = load_text_tokenizer(tokenizer)
    report = verify_files(path, vocab_size=vocab_size, card=card, sp=sp)
    for problem in report.problems:
        typer.echo(str(problem))
    typer.echo(f"{report.files} files, {report.dialogues} dialogues, {len(report.problems)} problems", err=True)
    if report.problems:
        raise typer.Exit(1)

# ------------------------------------------------------------------------------------------- chat

app.command("chat")(chat)  # its ~25 flags live in cli_chat.py


# ------------------------------------------------------------------------------------------ report


@app.command("report")
def report_cmd(
    output_dir: Path = typer.Argument(..., metavar="OUTPUT_DIR", help="A synth output folder (complete or not)."),
    compare: Optional[list[Path]] = typer.Option(
        None, "--compare", help="Another run's folder, or real recordings (wav, folder, data.jsonl), to plot beside this run (repeatable)."
    ),
    serve: bool = typer.Option(False, "--serve", help="Then serve the folder on 127.0.0.1 (needed for one-channel playback)."),
    port: int = typer.Option(8000, "--port", min=0, max=65535, help="Port for --serve (0: any free port)."),
) -> None:
    """Write OUTPUT_DIR/report.html: run summary, turn-taking plots, dialogues with a two-lane word timeline and player.

    The page opens offline, straight from disk (synth writes it too).
    """
    from jmoshi_augment.augment.report.build import serve_report, write_html_report

    path = write_html_report(output_dir, compare or None)
    typer.echo(str(path))
    if serve:
        serve_report(output_dir, port=port, on_ready=lambda url: typer.echo(f"serving {url} (Ctrl-C stops)", err=True))


def main() -> None:
    from jmoshi_augment.errors import JmoshiErrors

    try:
        app()
    except JmoshiErrors as e:
        if _state["debug"]:
            raise
        for line in e.lines():
            typer.echo(f"error: {line}", err=True)
        sys.exit(getattr(e, "exit_code", 2))  # 3: units failed by a passing fault (README, reruns)
    except JmoshiError as e:
        if _state["debug"]:
            raise
        typer.echo(f"error: {e}", err=True)
        sys.exit(2)
    except KeyboardInterrupt:
        typer.echo("interrupted", err=True)
        sys.exit(130)


if __name__ == "__main__":
    main()
