"""Commands of the analysis layer: ``reeng analyze`` and ``reeng release``.

Heavy libraries (pandas, scipy, matplotlib, frictionless) are imported inside the commands so
``reeng --help`` stays fast.
"""

from __future__ import annotations

import json
import shlex
import sys
from pathlib import Path

import click

from reeng.errors import ReengError

EXTRA_OPTIONS = {
    "lint": "Lint findings JSON (reeng gold lint --json) for the data-quality section.",
    "agreement": "Rater agreement JSON (reeng agreement --json).",
    "gold_eval": "The classifier's comparison with human labels (JSON with 'dimensions').",
    "reproduction": "Reproduction results JSON (with 'results').",
}


def _command_line() -> str:
    return "reeng " + " ".join(shlex.quote(a) for a in sys.argv[1:])


def _extra_option(key: str, help_text: str):
    return click.option(f"--{key.replace('_', '-')}", key, type=click.Path(path_type=Path), help=help_text)


def _with_extras(func):
    for key, help_text in reversed(EXTRA_OPTIONS.items()):
        func = _extra_option(key, help_text)(func)
    return func


def _check_extras(extras: dict[str, Path | None]) -> None:
    """A report input named on the command line that cannot be read is bad input: one error line, nothing written.

    (The analysis itself turns such an input into a "not available: reason" section, which suits a study's
    stages and notebooks; on the command line a mistyped path would otherwise pass unnoticed.)
    """
    from analysis.report import read_extra

    for key, path in extras.items():
        if path is not None and (problem := read_extra(key, path).problem):
            raise ReengError(f"--{key.replace('_', '-')} {path}: {problem}")


@click.command("analyze")
@click.option("--defects", "defects", type=click.Path(path_type=Path),
              help="Defect table (CSV or Parquet, normalized schema).")
@click.option("--store", type=click.Path(path_type=Path),
              help="Analyse a store's machine labels (its predictions) instead of --defects.")
@click.option("--sample", type=int, help="With --store: only the threads of this recorded `reeng sample` draw.")
@click.option("--model", help="With --store: whose predictions (default: the only model in the store).")
@click.option("--min-probability", type=float, help="With --store: labels below this probability count as abstentions.")
@click.option("--human", "human", help="Human labels of some of the threads: a CSV in the gold format, a defect "
              "table, or 'store' (the store's human_labels). Adds machine-only, human-only and PPI intervals.")
@click.option("--out", "out", required=True, type=click.Path(path_type=Path), help="Output folder.")
@click.option("--compare", "compare", type=click.Path(path_type=Path),
              help="A second defect table to compare with (another corpus, the study).")
@click.option("--design", type=click.Choice(["independent", "corpus_vs_study", "paired"]), default="independent",
              show_default=True, help="How the two sides of --compare relate: independent samples, a corpus vs "
              "the study, or the same threads labeled twice (paired).")
@click.option("--labels", default="human,machine", show_default=True,
              help="Names of the two sides of --compare, comma-separated.")
@click.option("--title", default="Defect analysis", show_default=True, help="Report title.")
@click.option("--formats", default="png", show_default=True,
              help="Figure formats, png first (the report embeds it); add pdf for print (TrueType fonts) or svg.")
@click.option("--json", "as_json", is_flag=True, help="Print tables.json to standard output.")
@_with_extras
def analyze_command(defects: Path | None, store: Path | None, sample: int | None, model: str | None,
                    min_probability: float | None, human: str | None, out: Path, compare: Path | None, design: str,
                    labels: str, title: str, formats: str, as_json: bool, **extras: Path | None) -> None:
    """Tables, statistics, figures and a report (HTML and Markdown) from a defect table or a store."""
    from analysis.analyze import analyze, check_formats, check_labels

    if (defects is None) == (store is None):
        raise ReengError("give exactly one of --defects TABLE or --store STORE")
    if store is None and (sample is not None or model or min_probability is not None):
        raise ReengError("--sample, --model and --min-probability need --store")
    if out.exists() and not out.is_dir():
        raise ReengError(f"--out {out}: exists and is not a folder")
    names, fmts = check_labels(labels), check_formats(formats)
    _check_extras(extras)
    table = defects
    if store is not None:
        from analysis.store_defects import store_machine_defects

        table = store_machine_defects(store, model=model, min_probability=min_probability, sample=sample)
        table.attrs["source"] = str(store)
    human_table = None
    if human is not None:
        from analysis.store_defects import human_defects

        human_table = human_defects(human, store)
    result = analyze(table, out, compare=compare, labels=names, comparison_kind=design, human=human_table,
                     extras=extras, title=title, command=_command_line(), formats=fmts)
    if as_json:
        click.echo((out / "tables.json").read_text(encoding="utf-8"))
        return
    from analysis.report import corpus_sentence

    if corpus := corpus_sentence(result.tables.defects.corpus):
        click.echo(f"corpus: {corpus}")
    claims = result.tables.claims
    for claim in claims.values():
        if claim.get("available"):
            left_out = f" ({claim['excluded']} lacking a label it needs, not counted)" if claim.get("excluded") else ""
            click.echo(f"{claim['statement']}: {claim['numerator']}/{claim['denominator']} = {claim['percent']}%{left_out}")
    if result.ppi is not None:
        for claim in result.ppi["claims"].values():
            if claim.get("available") and claim["ppi"]["share"] == claim["ppi"]["share"]:
                low, high = claim["ppi"]["ci"]
                click.echo(f"{claim['statement']} (PPI): {100 * claim['ppi']['share']:.1f}% "
                           f"(95% CI {100 * low:.1f}-{100 * high:.1f}%)")
            elif claim.get("available") and "reason" in claim["ppi"]:
                click.echo(f"{claim['statement']} (PPI): not estimated ({claim['ppi']['reason']})")
    click.echo(f"report: {out / 'report.html'}")


@click.group("release", invoke_without_command=True)
@click.option("--store", type=click.Path(path_type=Path), help="SQLite store with issues, comments, predictions.")
@click.option("--defects", "defects", multiple=True, type=click.Path(path_type=Path),
              help="Defect table(s) whose labels to include (repeatable).")
@click.option("--out", type=click.Path(path_type=Path), help="Release folder.")
@click.option("--title", help="Dataset title.")
@click.option("--version", "version", default="1.0.0", show_default=True, help="Dataset version.")
@click.option("--license", "license_id", default="CC-BY-4.0", show_default=True, help="SPDX license id for the labels.")
@click.option("--author", "authors", multiple=True, help="Dataset author (repeatable).")
@click.option("--url", help="The dataset's home page (written to the descriptors).")
@click.option("--salt", envvar="REENG_RELEASE_SALT", help="Secret salt for pseudonyms (else --salt-file).")
@click.option("--salt-file", type=click.Path(path_type=Path),
              help="Private file holding the salt, created if absent (default: ~/.cache/reeng/release-salt).")
@click.option("--keep-identities", is_flag=True, help="Keep logins, e-mails and @mentions (no pseudonyms).")
@click.option("--gold-eval", "gold_eval", type=click.Path(path_type=Path),
              help="The classifier's comparison with human labels (reeng classify gold-eval --json), stated in the datasheet.")
@click.pass_context
def release_group(ctx: click.Context, store: Path | None, defects: tuple[Path, ...], out: Path | None, title: str | None,
                  version: str, license_id: str, authors: tuple[str, ...], url: str | None, salt: str | None, salt_file: Path | None,
                  keep_identities: bool, gold_eval: Path | None) -> None:
    """Write a publishable dataset release; `reeng release validate DIR` checks one."""
    if ctx.invoked_subcommand is not None:
        return
    if out is None:
        raise ReengError("--out: name the release folder")
    from analysis.release import ReleaseOptions, write_release
    from analysis.report import classifier_evaluation, read_extra

    evaluation = None
    if gold_eval is not None:
        extra = read_extra("gold_eval", gold_eval)
        problem = extra.problem or (None if classifier_evaluation(extra.document) else "no scores per dimension")
        if problem:
            raise ReengError(f"--gold-eval {gold_eval}: {problem}")
        evaluation = extra.document
    options = ReleaseOptions(version=version, license=license_id, url=url, keep_identities=keep_identities,
                             salt=salt, salt_file=salt_file, machine_evaluation=evaluation)
    if title:
        options.title = title
    if authors:
        options.authors = authors
    summary = write_release(out, store=store, defects=list(defects), options=options)
    click.echo(", ".join(f"{n}: {rows} rows" for n, rows in summary.rows.items()))
    if summary.salt_origin:
        click.echo(f"pseudonym salt {summary.salt_origin} (not part of the release)")
    click.echo(f"release: {out}")


@release_group.command("validate")
@click.argument("release_dir", type=click.Path(path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="Print the problems as JSON.")
def validate_command(release_dir: Path, as_json: bool) -> None:
    """Check a release folder; exit status 2 on any problem."""
    from analysis.release_check import validate_release

    problems = validate_release(release_dir)
    if as_json:
        click.echo(json.dumps({"valid": not problems, "problems": problems}, indent=2))
    else:
        for problem in problems:
            click.echo(problem)
    if problems:
        raise ReengError(f"{release_dir}: {len(problems)} problem(s) found")
    if not as_json:
        click.echo(f"{release_dir}: valid")
