"""Commands of the taxonomy layer: the taxonomy itself, the gold data, rater agreement."""

from __future__ import annotations

import json
from pathlib import Path

import click


KINDS = {"defects": "jiang2024-defects", "non-reengineering": "jiang2024-non-reengineering"}


def _gold_path(path: Path | None, kind: str) -> Path:
    """The given file, or the study's published file (local copy or verified download)."""
    if path is not None:
        return path
    from reeng.datasets import locate

    return locate(KINDS[kind])


@click.group("taxonomy")
def taxonomy_group() -> None:
    """The defect taxonomy as versioned data."""


@taxonomy_group.command("show")
@click.option("--json", "as_json", is_flag=True, help="Print the machine-readable form.")
@click.option("--name", default="jiang2024", show_default=True, help="Which shipped taxonomy.")
def show_command(as_json: bool, name: str) -> None:
    """Print every dimension with its categories, definitions and aliases."""
    from taxonomy.model import load_taxonomy

    tax = load_taxonomy(name)
    if as_json:
        click.echo(json.dumps(tax.to_dict(), indent=2, ensure_ascii=False))
        return
    from rich.console import Console
    from rich.table import Table

    console = Console()
    console.print(f"[bold]{tax.title}[/bold]  ({tax.id} v{tax.version})")
    for dim in tax.dimensions:
        table = Table(title=f"{dim.id}: {dim.question}", title_justify="left", show_lines=False)
        for col in ("id", "origin", "parent", "definition", "aliases"):
            table.add_column(col, overflow="fold")
        for cat in dim.categories:
            table.add_row(cat.id, cat.origin, cat.parent or "", cat.definition, ", ".join(cat.aliases))
        console.print(table)


@click.group("gold")
def gold_group() -> None:
    """The study's human-labeled defects: import and lint."""


@gold_group.command("import")
@click.argument("path", required=False, type=click.Path(path_type=Path))
@click.option("--out", "out_dir", required=True, type=click.Path(path_type=Path), help="Output folder.")
@click.option("--kind", type=click.Choice(list(KINDS)), default="defects", show_default=True,
              help="Which published sheet PATH is.")
def gold_import_command(path: Path | None, out_dir: Path, kind: str) -> None:
    """Normalize the published CSV (default: the study's own) into defects.parquet/.csv."""
    from reeng.outputs import staged_dir
    from taxonomy.gold import import_defects, import_non_reengineering, write_table

    source = _gold_path(path, kind)
    frame = import_defects(source) if kind == "defects" else import_non_reengineering(source)
    stem = "defects" if kind == "defects" else "non_reengineering"
    with staged_dir(out_dir) as staging:
        write_table(frame, staging, stem)
    click.echo(f"{len(frame)} rows -> {out_dir / (stem + '.parquet')} and {stem}.csv")


@gold_group.command("lint")
@click.argument("path", required=False, type=click.Path(path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="Print findings as JSON.")
@click.option("--strict", is_flag=True, help="Exit 1 when there is any finding.")
def gold_lint_command(path: Path | None, as_json: bool, strict: bool) -> None:
    """List data-quality findings; rows are the CSV's own index values."""
    from taxonomy.lint import lint_file

    findings = lint_file(_gold_path(path, "defects"))
    if as_json:
        click.echo(json.dumps({"findings": [f.to_dict() for f in findings]}, indent=2, ensure_ascii=False))
    else:
        for f in findings:
            rows = (", ".join(f.rows[:12]) or "-") + (f" … ({len(f.rows)} rows)" if len(f.rows) > 12 else "")
            click.echo(f"{f.kind:28} {f.column or '-':24} rows {rows}: {f.detail}")
        click.echo(f"{len(findings)} finding(s)")
    if strict and findings:
        raise SystemExit(1)


@gold_group.command("fetch-threads")
@click.option("--store", "store_path", required=True, type=click.Path(path_type=Path), help="Store to fill (created if missing).")
@click.option("--gold", type=click.Path(path_type=Path), help="Gold defects CSV (default: the study's published file).")
@click.option("--api-url", default="https://api.github.com", show_default=True, help="GitHub API (or a compatible server).")
@click.option("--json", "as_json", is_flag=True)
def gold_fetch_threads_command(store_path: Path, gold: Path | None, api_url: str, as_json: bool) -> None:
    """Fetch exactly the gold issues' threads (not whole repositories) through the miner (token: GITHUB_TOKEN)."""
    import os

    from miner.client import GitHubClient, tokens_from_env
    from miner.store import open_store
    from reeng.errors import ReengError
    from taxonomy.gold import fetch_gold_threads, import_defects

    tokens = tokens_from_env(dict(os.environ))
    if not tokens and "api.github.com" in api_url:
        raise ReengError("set GITHUB_TOKEN: fetching the gold issues needs about 700 requests (60 an hour without a token)")
    defects = import_defects(_gold_path(gold, "defects"))
    result = fetch_gold_threads(GitHubClient(api_url, tokens), open_store(store_path), defects)
    if as_json:
        click.echo(json.dumps(result, indent=2))
        return
    click.echo(f"{result['fetched']} gold threads fetched, {result['already_stored']} already stored, "
               f"{len(result['missing'])} not found, of {result['gold_issues']} gold issues -> {store_path}")


@click.command("agreement")
@click.argument("sheet_a", type=click.Path(path_type=Path))
@click.argument("sheet_b", type=click.Path(path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
def agreement_command(sheet_a: Path, sheet_b: Path, as_json: bool) -> None:
    """Cohen's kappa per dimension between two raters' sheets (rows aligned by issue and defect)."""
    from taxonomy.agreement import agreement

    result = agreement(sheet_a, sheet_b)
    if as_json:
        click.echo(json.dumps(result.to_dict(), indent=2))
        return
    click.echo(f"{'dimension':16} {'kappa':>7} {'agree':>7} {'n':>5} {'missing':>8}")
    for dim, r in result.dimensions.items():
        kappa = f"{r.kappa:.3f}" if r.kappa is not None else "n/a"
        agree = f"{r.agreement:.3f}" if r.agreement is not None else "n/a"
        click.echo(f"{dim:16} {kappa:>7} {agree:>7} {r.n:>5} {r.missing:>8}")
    click.echo(f"aligned rows: {result.aligned}; unmatched: {result.unmatched}")


