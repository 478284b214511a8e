"""The ``jmoshi-augment`` command line. Thin: it maps flags onto typed options and calls the
library; every user-facing failure is a :class:`JmoshiError`, printed as one line (exit code 2)."""

from __future__ import annotations

import logging
import sys
from pathlib import Path
from typing import Optional

import typer

from jmoshi_augment import __version__
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
    from jmoshi_augment.corpora import LoadReport, load_corpus
    from jmoshi_augment.corpora.dialogue import write_jsonl
    from jmoshi_augment.io import atomic_output

    report = LoadReport()
    n_dialogues = n_turns = n_chars = 0
    with atomic_output(output, "w") as f:
        for d in write_jsonl(load_corpus(name, path, limit=limit, report=report), f):
            n_dialogues += 1
            n_turns += len(d.turns)
            n_chars += d.num_chars
    typer.echo(f"{output}: {n_dialogues} dialogues, {n_turns} turns, {n_chars} characters")
    for line in report.lines():
        typer.echo(line, err=True)


# ----------------------------------------------------------------------------------------- recipe


@recipe_app.command("check")
def recipe_check(
    recipes: list[Path] = typer.Argument(..., help="Recipe YAML files."),
    show: bool = typer.Option(False, "--show", help="Print the resolved recipe (all defaults filled in)."),
) -> None:
    """Validate recipes: unknown keys, wrong types and missing files are errors."""
    from jmoshi_augment.recipe import load_recipe

    for path in recipes:
        recipe = load_recipe(path)
        typer.echo(f"{path}: ok ({recipe.corpus.name}, tts={recipe.tts.backend}, formats={','.join(recipe.output.formats)})")
        if show:
            typer.echo(recipe.to_yaml())


# ------------------------------------------------------------------------------------------ synth
# (synth command: see augment/pipeline.py)

# ------------------------------------------------------------------------------------------ stats

# ----------------------------------------------------------------------------------------- shards

# ------------------------------------------------------------------------------------------- chat

# ------------------------------------------------------------------------------------------ report


def main() -> None:
    try:
        app()
    except JmoshiError as e:
        if _state["debug"]:
            raise
        typer.echo(f"error: {e}", err=True)
        sys.exit(2)
    except KeyboardInterrupt:
        typer.echo("interrupted", err=True)
        sys.exit(130)
