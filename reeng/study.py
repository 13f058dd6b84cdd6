"""``reeng study``: run the stages of a study, described by a small YAML config, into one folder.

Each stage is a function of a :class:`StudyContext` that lives in the layer it belongs to; this
module only orders them. Stages hand each other files (the layer contracts: the defect table,
the store, report inputs) through ``ctx.artifacts``, never Python objects. The whole run is
written into a staging folder and moved into place at the end, so a failed study leaves no
half-written output.
"""

from __future__ import annotations

import importlib
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import click
import yaml

from reeng.errors import ReengError

# Stage name -> "module:function", in the order a study runs them.
STAGES: dict[str, str] = {
    "gold": "taxonomy.study_stages:gold_stage",
    "lint": "taxonomy.study_stages:lint_stage",
    "agreement": "taxonomy.study_stages:agreement_stage",
    "corpus": "miner.study_stages:corpus_stage",
    "classify": "taxonomy.study_stages:classify_stage",
    "reproduce": "analysis.reproduction.study_stage:reproduce_stage",
    "reuse": "analysis.reuse.study_stage:reuse_stage",
    "analysis": "analysis.study_stages:analysis_stage",
    "release": "analysis.study_stages:release_stage",
}


@dataclass
class StudyContext:
    """What a stage sees: the config, its output folder, and what earlier stages produced."""

    config: dict[str, Any]
    out: Path
    config_dir: Path
    artifacts: dict[str, Path] = field(default_factory=dict)
    summary: dict[str, Any] = field(default_factory=dict)

    def section(self, name: str) -> dict[str, Any]:
        return self.config.get(name) or {}

    def path(self, value: str | None) -> Path | None:
        """A path from the config, relative to the config file's folder."""
        if value in (None, ""):
            return None
        p = Path(str(value)).expanduser()
        return p if p.is_absolute() else self.config_dir / p


def load_config(path: Path | None) -> tuple[dict[str, Any], Path]:
    """The study config (default: the Jiang et al. study shipped with the package)."""
    if path is None:
        text = (resources.files("reeng") / "studies" / "jiang2024.yaml").read_text(encoding="utf-8")
        return yaml.safe_load(text), Path.cwd()
    if not path.is_file():
        raise ReengError(f"{path}: no such study config")
    try:
        config = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise ReengError(f"{path}: not valid YAML ({str(exc).splitlines()[0]})") from None
    if not isinstance(config, dict):
        raise ReengError(f"{path}: a study config is a mapping of settings")
    return config, path.parent.resolve()


def _resolve(stage: str) -> Callable[[StudyContext], dict[str, Any]]:
    module, func = STAGES[stage].split(":")
    return getattr(importlib.import_module(module), func)


def run_study(config: dict[str, Any], config_dir: Path, out: Path, stages: list[str] | None = None) -> StudyContext:
    """Run the selected stages (default: the config's ``stages``, else all) into ``out``."""
    from reeng.outputs import staged_dir

    selected = stages or config.get("stages") or list(STAGES)
    unknown = [s for s in selected if s not in STAGES]
    if unknown:
        raise ReengError(f"unknown stage(s) {', '.join(unknown)} (known: {', '.join(STAGES)})")
    with staged_dir(out) as staging:
        ctx = StudyContext(config=config, out=staging, config_dir=config_dir)
        for name in [s for s in STAGES if s in selected]:
            started = time.perf_counter()
            click.echo(f"[{name}] …")
            result = _resolve(name)(ctx)
            ctx.summary[name] = {**result, "seconds": round(time.perf_counter() - started, 2)}
            for line in result.get("lines", []):
                click.echo(f"[{name}] {line}")
        (staging / "summary.json").write_text(json.dumps(ctx.summary, indent=2, default=str), encoding="utf-8")
    ctx.out = out
    return ctx


@click.command("study")
@click.argument("config_path", metavar="[CONFIG]", required=False, type=click.Path(path_type=Path))
@click.option("--out", type=click.Path(path_type=Path), help="Output folder (default: the config's `out`).")
@click.option("--stage", "stages", multiple=True, help=f"Run only these stages (of: {', '.join(STAGES)}).")
def study_command(config_path: Path | None, out: Path | None, stages: tuple[str, ...]) -> None:
    """Run a study described by CONFIG (default: Jiang et al. 2024 on its published data)."""
    config, config_dir = load_config(config_path)
    target = (out or Path(config.get("out") or "reeng-study")).resolve()
    run_study(config, config_dir, target, list(stages) or None)
    click.echo(f"study outputs: {target}")
