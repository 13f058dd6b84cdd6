"""The ``reeng`` command: wiring only.

Each layer keeps its commands in its own ``cli`` module; this file names them and loads a layer
only when one of its commands runs, so ``reeng --help`` stays fast and never imports torch or
spaCy. Every command's one-line summary lives here for the same reason.
"""

from __future__ import annotations

import importlib
import sys

import click

from reeng import __version__
from reeng.errors import ReengError

# name -> (import path "module:attribute", one-line summary shown by --help), in help order.
COMMANDS: dict[str, tuple[str, str]] = {
    "study": ("reeng.study:study_command", "Run a whole study: import, label, analyse, reproduce, release."),
    "taxonomy": ("taxonomy.cli:taxonomy_group", "Show the defect taxonomy (dimensions, categories, aliases)."),
    "gold": ("taxonomy.cli:gold_group", "Import and lint the study's human-labeled defects."),
    "agreement": ("taxonomy.cli:agreement_command", "Cohen's kappa per dimension between two raters' sheets."),
    "repos": ("miner.cli:repos_group", "Select repositories to mine (GitHub search, presets)."),
    "mine": ("miner.cli:mine_command", "Collect complete issue threads into a store."),
    "sample": ("miner.cli:sample_command", "Draw a seeded, replayable study sample from a store."),
    "import": ("miner.cli:import_group", "Import published corpora or exports into a store."),
    "export": ("miner.cli:export_command", "Export a store's issues and comments."),
    "serve-github": ("miner.cli:serve_command", "Serve a store over a local GitHub-compatible API."),
    "classify": ("taxonomy.classify_cli:classify_group", "Train, evaluate and apply taxonomy classifiers."),
    "annotate": ("taxonomy.classify_cli:annotate_group", "Labeling sheets, adjudication, active learning."),
    "analyze": ("analysis.cli:analyze_command", "Tables, statistics, figures and a report from a defect table."),
    "release": ("analysis.cli:release_group", "Write or validate a publishable dataset release."),
    "reproduce": ("analysis.reproduce_cli:reproduce_group", "List and run the library of reproduced defects."),
    "reuse": ("analysis.reuse.cli:reuse_group", "Model reuse lab: SeaM, defect inheritance, CNN decomposition."),
}


class LazyGroup(click.Group):
    """A group whose subcommands are imported on first use."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return list(COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name not in COMMANDS:
            return None
        module_name, attr = COMMANDS[cmd_name][0].split(":")
        command = getattr(importlib.import_module(module_name), attr)
        command.name = cmd_name
        return command

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        rows = [(name, summary) for name, (_, summary) in COMMANDS.items()]
        with formatter.section("Commands"):
            formatter.write_dl(rows)


@click.group(cls=LazyGroup)
@click.version_option(__version__, prog_name="reeng")
def cli() -> None:
    """reeng: empirical research on defects in reengineered deep-learning models for computer vision.

    Layers: miner (collect threads) -> taxonomy (label them) -> analysis (tables, figures,
    reports, reproduction, release). Set REENG_DATA_DIR to a local copy of the published data.
    """


def main(argv: list[str] | None = None) -> None:
    """Entry point: user errors become one ``error:`` line and exit status 2."""
    try:
        cli.main(args=argv, prog_name="reeng", standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("aborted", err=True)
        sys.exit(130)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    except ReengError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(2)
