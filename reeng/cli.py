"""The ``reeng`` command: wiring only.

Each layer keeps its commands in its own ``cli`` module; this file names them and loads a layer
only when one of its commands runs, so ``reeng --help`` stays fast and never imports torch or
spaCy. Every command's one-line summary lives here for the same reason.
"""

from __future__ import annotations

import importlib
import os
import sys
import warnings

import click

from reeng import __version__
from reeng.errors import ReengError, ReengWarning, describe, scrub, write_error_log

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
    "classify": ("taxonomy.cli:classify_group", "Train, evaluate and apply taxonomy classifiers."),
    "annotate": ("taxonomy.cli:annotate_group", "Label threads: sheets or Label Studio; agreement, adjudication, active learning."),
    "analyze": ("analysis.cli:analyze_command", "Tables, statistics, figures and a report from a defect table."),
    "release": ("analysis.cli:release_group", "Write or validate a publishable dataset release."),
    "reproduce": ("analysis.reproduce_cli:reproduce_group", "List and run the library of reproduced defects."),
    "compare": ("analysis.reproduce_cli:compare_command", "Compare a model port with its reference, layer by layer."),
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

    def invoke(self, ctx: click.Context) -> object:
        try:
            return super().invoke(ctx)
        except BrokenPipeError as exc:  # click would swallow it silently; the boundary reports it
            raise ReengError(describe(exc)) from exc

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


# click >= 8.2 raises this for a group called without a command; older versions print the help themselves.
NO_ARGS_IS_HELP = getattr(click.exceptions, "NoArgsIsHelpError", ())


def main(argv: list[str] | None = None) -> None:
    """Entry point and the one error boundary of every command.

    Expected failures (a :class:`ReengError`, bad options, a full disk, a closed pipe, a file that
    is not a store) become one ``error:`` line and exit status 2. Anything else is a bug: one line
    names the log file that keeps its traceback (exit status 1). Standard output is flushed inside
    the boundary, so a full or closed stdout is reported like any other write failure.
    """
    args = list(sys.argv[1:] if argv is None else argv)
    try:
        try:
            with warnings.catch_warnings():
                warnings.showwarning = _show_warning
                cli.main(args=args, prog_name="reeng", standalone_mode=False)
        finally:
            sys.stdout.flush()
    except click.exceptions.Abort as exc:  # click's word for Ctrl-C, or for SIGTERM where a command turns it into one
        _detach_stdout()
        click.echo("aborted", err=True)
        sys.exit(getattr(exc.__cause__, "exit_code", 130))
    except NO_ARGS_IS_HELP as exc:  # `reeng` alone, `reeng gold`: the help, as click shows it
        exc.show()
        sys.exit(exc.exit_code)
    except click.ClickException as exc:
        hint = ""
        if isinstance(exc, click.UsageError) and exc.ctx is not None:
            hint = f" (see '{exc.ctx.command_path} --help')"
        click.echo(f"error: {_one_line(scrub(exc.format_message()))}{hint}", err=True)
        sys.exit(2)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    except SystemExit:
        raise
    except KeyboardInterrupt:
        _detach_stdout()
        click.echo("aborted", err=True)
        sys.exit(130)
    except Exception as exc:  # noqa: BLE001 - this is the boundary: nothing passes it as a traceback
        _detach_stdout()
        message = describe(exc)
        if message is not None:
            click.echo(f"error: {_one_line(scrub(message))}", err=True)
            sys.exit(2)
        log = write_error_log(exc, args)
        where = f"; details in {log}" if log else ""
        summary = _one_line(scrub(f"{type(exc).__name__}: {exc}"))[:300]
        click.echo(f"error: unexpected failure ({summary}){where}; please report it", err=True)
        sys.exit(1)


def _show_warning(message: Warning | str, category: type[Warning], filename: str, lineno: int, file=None,
                  line=None) -> None:  # noqa: ANN001 - warnings.showwarning's signature
    """Our own warnings as one ``warning:`` line on stderr; any other warning as Python shows it."""
    if issubclass(category, ReengWarning):
        click.echo(f"warning: {_one_line(scrub(str(message)))}", err=True)
    else:
        sys.stderr.write(warnings.formatwarning(message, category, filename, lineno, line))


def _one_line(text: str) -> str:
    return " ".join(text.split()) or "no details"


def _detach_stdout() -> None:
    """If stdout cannot be written (full, closed), drop what is buffered for it, so exit stays quiet."""
    try:
        sys.stdout.flush()
    except Exception:  # noqa: BLE001 - the failure at hand is being reported already
        try:
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
            os.close(devnull)
        except Exception:  # noqa: BLE001 - not a real file descriptor (captured in tests)
            pass
