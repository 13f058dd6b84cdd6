"""``reeng reuse``: train source models, run SeaM, defect inheritance and decomposition, compare with the papers.

torch is imported inside the commands so ``reeng --help`` stays fast.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import click

from reeng.errors import ReengError

# The seeds numpy and scikit-learn accept (a negative or larger seed ended in scikit-learn's traceback).
SEED = click.IntRange(0, 2**32 - 1)
TARGETS_HELP = ("Target problem, repeatable: C-vs-rest (SeaM's balanced one-vs-rest), a class set such as "
                "0,6,8,9, all-vs-rest, subsets ({0,6,8,9} {1,4,7} {2,3,5}) or default (all of those).")


@contextmanager
def progress_line(enabled: bool) -> Iterator[Callable[[str], None]]:
    """A transient spinner on stderr that shows the latest step of a long run."""
    from rich.console import Console
    from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    console = Console(stderr=True)
    with Progress(SpinnerColumn(), TextColumn("{task.description}"), TimeElapsedColumn(), transient=True,
                  disable=not (enabled and console.is_terminal), console=console) as bar:
        task = bar.add_task("starting", total=None)
        yield lambda text: bar.update(task, description=text)


def common(func: Callable[..., Any]) -> Callable[..., Any]:
    """The options every experiment command shares."""
    options = [
        click.option("--setting", default="small", show_default=True,
                     help="Named scale: tiny (seconds), small (CPU default), large (GPU script)."),
        click.option("--device", default="cpu", show_default=True, help="cpu, cuda, or auto."),
        click.option("--json", "as_json", is_flag=True, help="Print the full result as JSON."),
        click.option("--out", type=click.Path(path_type=Path), help="Also write the JSON result to this file."),
    ]
    return functools.reduce(lambda f, option: option(f), reversed(options), func)


def _emit(result: dict[str, Any], as_json: bool, out: Path | None, text: Callable[[], str]) -> None:
    from reeng.outputs import staged_file

    payload = json.dumps(result, indent=2, default=str)
    if out is not None:
        if out.is_dir():
            raise ReengError(f"--out {out}: is a folder (give a file name such as {out / 'reuse.json'})")
        with staged_file(out) as tmp:
            tmp.write_text(payload + "\n", encoding="utf-8")
    click.echo(payload if as_json else text())


def _source(model_path: Path | None, arch: str, setting: dict[str, Any], seed: int, device: Any,
            progress: Callable[[str], None]) -> tuple[Any, dict, Any, dict]:
    """A model file's model, spec, the data it was trained on and its record; without a file, train one now."""
    from analysis.reuse.data import load_dataset
    from analysis.reuse.networks import load_model
    from analysis.reuse.suite import train_source

    if model_path is not None:
        model, record = load_model(model_path)
        data_record = record.get("data", {})
        data = load_dataset(data_record.get("dataset", "mnist"), int(data_record.get("seed", seed)),
                            data_record.get("limit"))
        return model, record["spec"], data, record
    data = load_dataset("mnist", seed, setting["limit"])
    model, spec, record = train_source(arch, data, setting, seed, device, progress)
    return model, spec, data, record


@click.group("reuse")
def reuse_group() -> None:
    """Model reuse lab: SeaM re-engineering, defect inheritance, CNN modular decomposition."""


@reuse_group.command("train-source")
@click.option("--arch", "archs", multiple=True, type=click.Choice(["vgg", "resnet"]),
              help="Architectures (default: vgg and resnet).")
@click.option("--dataset", "datasets", multiple=True, type=click.Choice(["mnist", "digits"]),
              help="Datasets (default: mnist).")
@click.option("--seed", "seeds", multiple=True, type=SEED, help="Seeds (default: the setting's).")
@click.option("--setting", default="small", show_default=True, help="Named scale: tiny, small or large.")
@click.option("--device", default="cpu", show_default=True, help="cpu, cuda, or auto.")
@click.option("--out", type=click.Path(path_type=Path), default=Path("reuse-models"), show_default=True,
              help="Folder for the model files and sources.json.")
def train_source_command(archs: tuple[str, ...], datasets: tuple[str, ...], seeds: tuple[int, ...], setting: str,
                         device: str, out: Path) -> None:
    """Train and save source models, recording data, split, seed and scores."""
    from analysis.reuse.data import load_dataset
    from analysis.reuse.networks import save_model
    from analysis.reuse.suite import settings_for, train_source
    from analysis.reuse.training import resolve_device
    from reeng.outputs import staged_dir

    settings = settings_for(setting)
    dev = resolve_device(device)
    if out.exists() and not out.is_dir():
        raise ReengError(f"--out {out}: exists and is not a folder")
    records = []
    with staged_dir(out) as staging, progress_line(True) as progress:
        for seed in seeds or settings["seeds"]:
            for name in datasets or ("mnist",):
                data = load_dataset(name, seed, settings["limit"])
                for arch in archs or ("vgg", "resnet"):
                    model, spec, record = train_source(arch, data, settings, seed, dev, progress)
                    path = staging / f"{arch}-{name}-seed{seed}.pt"
                    save_model(path, model, spec, record)
                    records.append({"file": path.name, "spec": spec, **record})
        (staging / "sources.json").write_text(json.dumps({"sources": records}, indent=2), encoding="utf-8")
    for r in records:
        click.echo(f"{out / r['file']}: test accuracy {r['test_accuracy']:.1%} (epoch {r['chosen_epoch']} "
                   f"of {r['epochs']}, {r['train_seconds']:.0f} s)")


@reuse_group.command("seam")
@click.option("--targets", "target_specs", multiple=True, help=TARGETS_HELP)
@click.option("--model", "model_path", type=click.Path(path_type=Path),
              help="A model file from `reeng reuse train-source` (default: train a VGG now).")
@click.option("--seed", default=0, show_default=True, type=SEED)
@common
def seam_command(target_specs: tuple[str, ...], model_path: Path | None, seed: int, setting: str, device: str,
                 as_json: bool, out: Path | None) -> None:
    """Re-engineer a model for target label subsets (SeaM): retention, accuracy vs both baselines, MACs, latency."""
    from analysis.reuse.seam import parse_targets, seam_experiment
    from analysis.reuse.suite import settings_for
    from analysis.reuse.training import resolve_device

    settings = settings_for(setting)
    targets = parse_targets(target_specs or tuple(settings["seam"]["targets"]))
    dev = resolve_device(device)
    with progress_line(not as_json) as progress:
        model, _, data, _ = _source(model_path, settings["seam"]["arch"], settings, seed, dev, progress)
        rows = seam_experiment(model, data, targets, settings["seam"], seed, dev, progress)

    def text() -> str:
        lines = [f"{'target':<12} {'kept':>6} {'acc':>7} {'argmax':>7} {'restr.':>7} {'MACs':>6} "
                 f"{'ORT ms':>14} {'torch ms':>14}"]
        for r in rows:
            lines.append(f"{r['target']:<12} {r['retention']:>6.1%} {r['accuracy']:>7.1%} {r['baseline_argmax_all']:>7.1%} "
                         f"{r['baseline_restricted']:>7.1%} {r['nonzero_mac_ratio']:>6.1%} "
                         f"{r['onnxruntime_ms']:>6.3f}/{r['source_onnxruntime_ms']:<7.3f} "
                         f"{r['torch_ms']:>6.3f}/{r['source_torch_ms']:<7.3f}")
        lines.append("Latency: re-engineered/original, batch 1, one thread. The masks are unstructured: dense "
                     "engines (torch, ONNX Runtime) multiply the zeros, so no speed-up is expected.")
        return "\n".join(lines)

    _emit({"seam": rows}, as_json, out, text)


@reuse_group.command("inherit")
@click.option("--model", "model_path", type=click.Path(path_type=Path),
              help="An MNIST model file from `reeng reuse train-source` (default: train a ResNet now).")
@click.option("--thresholds", help="Comma-separated prune thresholds for SeaM fine-tuning (default: the setting's).")
@click.option("--seed", default=0, show_default=True, type=SEED)
@common
def inherit_command(model_path: Path | None, thresholds: str | None, seed: int, setting: str, device: str,
                    as_json: bool, out: Path | None) -> None:
    """Defect inheritance (MNIST source -> digits target): standard vs SeaM fine-tuning vs scratch, DIR and accuracy."""
    from analysis.reuse.data import load_dataset
    from analysis.reuse.inherit import inherit_experiment
    from analysis.reuse.suite import settings_for
    from analysis.reuse.training import resolve_device

    override: dict[str, Any] = {}
    if thresholds:
        try:
            values = [float(t) for t in thresholds.split(",") if t.strip()]
        except ValueError:
            raise ReengError(f"--thresholds {thresholds!r}: give numbers such as 0.3,0.6,0.9") from None
        if not values or not all(0 < v < 1 for v in values):
            raise ReengError(f"--thresholds {thresholds!r}: each threshold is a pruned share between 0 and 1")
        override = {"inherit": {"thresholds": values}}
    settings = settings_for(setting, override)
    dev = resolve_device(device)
    with progress_line(not as_json) as progress:
        model, spec, data, _ = _source(model_path, settings["inherit"]["arch"], settings, seed, dev, progress)
        if data.name != "mnist":
            raise ReengError(f"{model_path}: inherit needs an MNIST source model (this one was trained on {data.name})")
        digits = load_dataset("digits", seed, settings["limit"])
        rows = inherit_experiment(model, spec, digits, settings["inherit"], seed, dev, progress)

    def text() -> str:
        lines = [f"{'method':<10} {'threshold':>9} {'kept':>6} {'accuracy':>9} {'DIR':>7}  mask epoch"]
        for r in rows:
            kept = "" if r["retention"] is None else f"{r['retention']:.1%}"
            stop = "" if "mask_epoch" not in r else f"  {r['mask_epoch']}" + (
                "" if r["threshold_reached"] else " (threshold not reached: last epoch)")
            lines.append(f"{r['method']:<10} {r['threshold'] if r['threshold'] is not None else '':>9} {kept:>6} "
                         f"{r['accuracy']:>9.1%} {r['dir']:>7.1%}{stop}")
        return "\n".join(lines)

    _emit({"inherit": rows}, as_json, out, text)


@reuse_group.command("decompose")
@click.option("--model", "model_path", type=click.Path(path_type=Path),
              help="An MNIST model file from `reeng reuse train-source` (default: train a VGG now).")
@click.option("--other", "other_path", type=click.Path(path_type=Path),
              help="A digits model of the same architecture for inter reuse (default: train one now).")
@click.option("--seed", default=0, show_default=True, type=SEED)
@common
def decompose_command(model_path: Path | None, other_path: Path | None, seed: int, setting: str, device: str,
                      as_json: bool, out: Path | None) -> None:
    """Decompose a CNN into per-class modules: composition, Jaccard, reuse, replacement, cost, KRR/cohesion/coupling."""
    from analysis.reuse.data import load_dataset
    from analysis.reuse.decompose import decompose_experiment
    from analysis.reuse.networks import load_model
    from analysis.reuse.suite import settings_for, train_source
    from analysis.reuse.training import resolve_device

    settings = settings_for(setting)
    dev = resolve_device(device)
    with progress_line(not as_json) as progress:
        model, spec, data, record = _source(model_path, settings["decompose"]["arch"], settings, seed, dev, progress)
        digits = load_dataset("digits", seed, settings["limit"])
        if other_path is not None:
            other, other_record = load_model(other_path)
            if other_record["data"]["dataset"] != "digits":
                raise ReengError(f"{other_path}: --other needs a model trained on digits")
        else:
            other, _, _ = train_source(spec["arch"], digits, settings, seed, dev, progress)
        result = decompose_experiment(model, spec, data, (other, digits), record["train_seconds"],
                                      settings["decompose"], seed, dev, progress)

    def text() -> str:
        intra = result["intra_reuse"]
        inter = result.get("inter_reuse", [])
        mean = lambda rows, k: sum(r[k] for r in rows) / len(rows) if rows else float("nan")  # noqa: E731
        return "\n".join([
            f"original accuracy {result['original_accuracy']:.1%}, composed {result['composed_accuracy']:.1%} "
            f"(top-5 {result['original_top5']:.1%} vs {result['composed_top5']:.1%})",
            f"module overlap (Jaccard) mean {result['jaccard_mean']:.3f}, range {result['jaccard_range'][0]:.3f}-"
            f"{result['jaccard_range'][1]:.3f}; KRR {result['krr']:.1%}, cohesion {result['cohesion']:.3f}, "
            f"coupling {result['coupling']:.3f}; units kept per layer (mean over modules) "
            + ", ".join(f"{k:.0%}" for k in result["units_kept_per_layer"]),
            f"intra reuse ({len(intra)} pairs): modules {mean(intra, 'composed'):.1%} vs scratch {mean(intra, 'scratch'):.1%}",
            f"inter reuse ({len(inter)} pairs): modules {mean(inter, 'composed'):.1%} vs scratch {mean(inter, 'scratch'):.1%}",
            *[f"replace module {r['class']}: weak {r['weak_composed']:.1%} -> {r['replaced']:.1%} "
              f"(strong {r['strong']:.1%})" for r in result["replacement"]],
            f"cost: decomposition {result['decompose_seconds']:.1f} s vs retraining {result['retrain_seconds']:.1f} s",
        ])

    _emit({"decompose": result}, as_json, out, text)


@reuse_group.command("run")
@click.option("--seeds", help="Comma-separated seeds (default: the setting's; small: 0, large: 0,1,2).")
@click.option("--experiments", default="seam,inherit,decompose", show_default=True,
              help="Which experiments to run.")
@common
def run_command(seeds: str | None, experiments: str, setting: str, device: str, as_json: bool,
                out: Path | None) -> None:
    """Run the default suite and print the side-by-side table of paper claims and measured values."""
    from analysis.reuse.suite import format_claims, run_suite

    override: dict[str, Any] = {}
    if seeds is not None:
        try:
            override["seeds"] = [SEED.convert(s.strip(), None, None) for s in seeds.split(",")]
        except click.BadParameter:
            raise ReengError(f"--seeds {seeds!r}: give seeds between 0 and {2**32 - 1}, such as 0,1,2") from None
    chosen = tuple(e.strip() for e in experiments.split(",") if e.strip())
    with progress_line(not as_json) as progress:
        result = run_suite(setting, override, device, chosen, progress)
    _emit(result, as_json, out, lambda: format_claims(result["claims"])
          + f"\n({result['runs']['seconds']:.0f} s, setting {setting}, device {result['runs']['device']})")
