"""``reeng reproduce`` (list and run the library of reproduced defects and the user's own cases)
and ``reeng compare`` (a researcher's own port against its reference).

Heavy imports (torch, numpy, the cases) happen inside the commands so ``reeng --help`` stays fast.
torch, onnx and onnxruntime come with the ``reproduce`` extra; without it these commands stop
with one error line naming the extra.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

import click

if TYPE_CHECKING:
    from analysis.reproduction.compare import CompareResult

SELECT_HELP = "Filter, e.g. 'stage=training,manifestation=reproducibility' (keys: stage, manifestation, " \
              "impact, root_cause, id, issue, reference_kind; a|b for either)."


EXTRA_HINT = "pip install 'reeng[reproduce]'"


def require_reproduce_extra() -> None:
    """One clear error when torch (the ``reproduce`` extra) is not installed."""
    try:
        import torch  # noqa: F401
    except ImportError as exc:
        from reeng.errors import ReengError

        raise ReengError(f"reproduction needs the 'reproduce' extra (torch, onnx, onnxruntime): {EXTRA_HINT} "
                         f"({exc})") from exc


@click.group("reproduce")
def reproduce_group() -> None:
    """List and run the library of reproduced defects."""
    require_reproduce_extra()


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
    known = discover(list(extra))
    entries = select(known, list(names), filters)
    if out is None:
        report = run_cases(entries, device, dtypes, repeat, None, progress=not as_json)
    else:  # an earlier run's figure folder of a case not run now would sit beside a results.json without it
        with staged_dir(out, owns=[e.id for e in known]) as staging:
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


@click.command("compare")
@click.argument("reference", metavar="REF")
@click.argument("port", metavar="PORT", required=False)
@click.option("--inputs", "inputs_path", required=True, type=click.Path(path_type=Path),
              help="An .npz whose arrays, in file order, are the models' positional inputs.")
@click.option("--mapping", "mapping_path", type=click.Path(path_type=Path),
              help="JSON or YAML {reference layer: port layer}; default: same names, else execution order and shapes.")
@click.option("--tol", default=1e-4, show_default=True, type=click.FloatRange(min=0.0),
              help="dynamo's tol: allclose atol = rtol, and tol/10 slack in the RMSE rule.")
@click.option("--record", "record_path", type=click.Path(path_type=Path),
              help="Store REF's outputs and per-layer outputs in this .npz (PORT may then be left out).")
@click.option("--out", type=click.Path(path_type=Path), help="Folder for report.json, layers.csv and localization.png.")
@click.option("--json", "as_json", is_flag=True, help="Print the report JSON.")
@click.option("--check", is_flag=True, help="Exit with status 1 when the port deviates (default: report only).")
def compare_command(reference: str, port: str | None, inputs_path: Path, mapping_path: Path | None, tol: float,
                    record_path: Path | None, out: Path | None, as_json: bool, check: bool) -> None:
    """Compare a port with its reference: verdict per output, per-layer divergence, the culprit.

    REF and PORT are each file.py:factory, a TorchScript file, an ONNX file or recorded outputs
    (.npz from --record)."""
    require_reproduce_extra()
    import csv

    from analysis.reproduction.compare import compare, load_inputs, load_mapping, record
    from reeng.errors import ReengError
    from reeng.outputs import spreadsheet_cell, staged_dir

    if not inputs_path.is_file():
        raise ReengError(f"--inputs {inputs_path}: no such file")
    if port is None and record_path is not None:  # recording alone: the comparison's options would go unread
        given = [flag for flag, value in (("--out", out), ("--mapping", mapping_path), ("--json", as_json), ("--check", check))
                 if value]
        if given:
            raise ReengError(f"{', '.join(given)} compare{'s' if len(given) == 1 else ''} REF with PORT: "
                             "give PORT too, or --record FILE alone")
    inputs = load_inputs(inputs_path)
    if record_path is not None:
        record(reference, inputs, record_path)
        click.echo(f"recorded {reference}: {record_path}")
        if port is None:
            return
    if port is None:
        raise ReengError("compare needs REF and PORT (or --record FILE to record REF alone)")
    mapping = load_mapping(mapping_path) if mapping_path is not None else None
    if out is None:
        result = compare(reference, port, inputs, mapping, tol)
    else:
        with staged_dir(out) as staging:
            result = compare(reference, port, inputs, mapping, tol, out=staging)
            if result.figure is not None:
                result.figure = out / result.figure.name
            (staging / "report.json").write_text(json.dumps(result.to_dict(), indent=2, default=str), encoding="utf-8")
            with open(staging / "layers.csv", "w", newline="", encoding="utf-8") as fh:
                rows = result.to_dict()["layers"]
                writer = csv.DictWriter(fh, fieldnames=list(rows[0]) if rows else ["layer"])
                writer.writeheader()
                writer.writerows({k: spreadsheet_cell(v) for k, v in row.items()} for row in rows)
    report = result.to_dict()
    if as_json:
        click.echo(json.dumps(report, indent=2, default=str))
    else:
        _print_comparison(result, report, out)
    if check and not result.agrees:
        raise SystemExit(1)


def _print_comparison(result: CompareResult, report: dict, out: Path | None) -> None:
    for name, verdict in report["outputs"].items():
        click.echo(f"{'agree' if verdict['agrees'] else verdict['status']:<15} {name:<20} {verdict['detail']}")
    for name in report["unmatched_outputs"]:
        click.echo(f"{'unmatched':<15} {name}")
    if result.localization is not None:
        loc = result.localization
        click.echo(f"layers: {len(loc.layers)} compared (matched by {loc.matched_by}), "
                   f"{len(loc.unmatched_reference)} reference and {len(loc.unmatched_candidate)} port layer(s) unmatched")
        for label, names in (("unmatched in REF", loc.unmatched_reference), ("unmatched in PORT", loc.unmatched_candidate)):
            if names:
                click.echo(f"  {label}: {', '.join(names[:8])}" + (" …" if len(names) > 8 else ""))
        if loc.culprit:
            row = next(d for d in loc.layers if d.name == loc.culprit)
            click.echo(f"divergence introduced at: {loc.culprit} (module {loc.culprit_module or '<top level>'}, "
                       f"δ {row.delta:.3g}, inputs δ {row.delta_in:.3g})")
        else:
            click.echo("no layer diverges")
    for note in report["notes"]:
        click.echo(f"note: {note}")
    click.echo(f"verdict: {'agree' if result.agrees else 'deviate'}")
    if out is not None:
        click.echo(f"report: {out / 'report.json'}")
