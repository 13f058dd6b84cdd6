"""``reeng reproduce``: list and run the library of reproduced defects (and the user's own cases).

Heavy imports (torch, numpy, the cases) happen inside the commands so ``reeng --help`` stays fast.
"""

from __future__ import annotations

import json
from pathlib import Path

import click

SELECT_HELP = "Filter, e.g. 'stage=training,manifestation=reproducibility' (keys: stage, manifestation, " \
              "impact, root_cause, id, issue, reference_kind; a|b for either)."


@click.group("reproduce")
def reproduce_group() -> None:
    """List and run the library of reproduced defects."""


@reproduce_group.command("list")
@click.option("--select", "select_expr", help=SELECT_HELP)
@click.option("--cases", "extra", multiple=True, type=click.Path(exists=True, path_type=Path),
              help="Also load case files (or folders of them).")
@click.option("--json", "as_json", is_flag=True, help="Print the case metadata as JSON.")
def list_command(select_expr: str | None, extra: tuple[Path, ...], as_json: bool) -> None:
    """List the cases, their issues and taxonomy labels."""
    from analysis.reproduction.runner import discover, parse_select, select

    entries = select(discover(list(extra)), [], parse_select(select_expr))
    described = [e.describe() for e in entries]
    if as_json:
        click.echo(json.dumps({"cases": described}, indent=2))
        return
    for d in described:
        labels = d.get("labels") or {}
        label_text = " ".join(f"{k}={labels[k]}" for k in ("stage", "manifestation", "impact", "root_cause")
                              if k in labels)
        click.echo(f"{d['case']:<38} {label_text}")
        for url in d.get("issues") or []:
            click.echo(f"    {url}")
        if d.get("error"):
            click.echo(f"    invalid: {d['error']}")
    click.echo(f"{len(described)} case(s)")


@reproduce_group.command("run")
@click.argument("names", nargs=-1, metavar="[CASE]...")
@click.option("--select", "select_expr", help=SELECT_HELP)
@click.option("--cases", "extra", multiple=True, type=click.Path(exists=True, path_type=Path),
              help="Also load case files (or folders of them).")
@click.option("--device", default="auto", show_default=True, type=click.Choice(["auto", "cpu", "cuda"]),
              help="auto uses CUDA when present; CUDA-only checks are skipped on the CPU.")
@click.option("--dtype", "dtype_spec", default="fp32", show_default=True,
              help="Precisions for dtype-aware checks: a comma list of fp32, fp16, bf16.")
@click.option("--repeat", default=5, show_default=True, type=click.IntRange(2, 1000),
              help="Repeats K for nondeterminism checks.")
@click.option("--out", type=click.Path(path_type=Path), help="Folder for results.json and figures.")
@click.option("--json", "as_json", is_flag=True, help="Print the results JSON.")
def run_command(names: tuple[str, ...], select_expr: str | None, extra: tuple[Path, ...], device: str,
                dtype_spec: str, repeat: int, out: Path | None, as_json: bool) -> None:
    """Run cases (default: all) and report a verdict per case."""
    from analysis.reproduction.runner import discover, parse_dtypes, parse_select, run_cases, select
    from reeng.outputs import staged_dir

    filters = parse_select(select_expr)
    dtypes = parse_dtypes(dtype_spec)
    entries = select(discover(list(extra)), list(names), filters)
    if out is None:
        report = run_cases(entries, device, dtypes, repeat, None, progress=not as_json)
    else:
        with staged_dir(out) as staging:
            report = run_cases(entries, device, dtypes, repeat, staging, progress=not as_json)
            (staging / "results.json").write_text(json.dumps(report, indent=2, default=str), encoding="utf-8")
    if as_json:
        click.echo(json.dumps(report, indent=2, default=str))
        return
    for row in report["results"]:
        reason = report["details"][row["case"]]["reason"]
        click.echo(f"{row['verdict']:<15} {row['case']:<38} {row['seconds']:>7.2f}s" + (f"  {reason}" if reason else ""))
    counts: dict[str, int] = {}
    for row in report["results"]:
        counts[row["verdict"]] = counts.get(row["verdict"], 0) + 1
    click.echo(", ".join(f"{v} {n}" for v, n in counts.items()) + f" (device {report['run']['device']})")
    if out is not None:
        click.echo(f"results: {out / 'results.json'}")
