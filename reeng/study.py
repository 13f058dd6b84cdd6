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
    failed: dict[str, dict[str, Any]] = field(default_factory=dict)

    def section(self, name: str) -> dict[str, Any]:
        return self.config.get(name) or {}

    def path(self, value: str | None) -> Path | None:
        """A path from the config, relative to the config file's folder."""
        if value in (None, ""):
            return None
        p = Path(str(value)).expanduser()
        return p if p.is_absolute() else self.config_dir / p


def load_config(path: Path | None) -> tuple[dict[str, Any], Path]:
    """The study config (default: the Jiang et al. study shipped with the package), checked against its schema."""
    from reeng.study_config import validate_config

    if path is None:
        text = (resources.files("reeng") / "studies" / "jiang2024.yaml").read_text(encoding="utf-8")
        return validate_config(yaml.safe_load(text), "the default study config"), Path.cwd()
    if not path.is_file():
        raise ReengError(f"{path}: no such study config")
    try:
        text = path.read_bytes().decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ReengError(f"{path}: not a YAML study config (not UTF-8 text: byte {exc.start})") from None
    try:
        config = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        where = getattr(exc, "problem_mark", None)
        line = f" at line {where.line + 1}" if where is not None else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise ReengError(f"{path}: not valid YAML{line} ({problem})") from None
    except RecursionError:
        raise ReengError(f"{path}: not a study config (nested too deeply)") from None
    return validate_config(config, str(path)), path.parent.resolve()


def _resolve(stage: str) -> Callable[[StudyContext], dict[str, Any]]:
    module, func = STAGES[stage].split(":")
    return getattr(importlib.import_module(module), func)


def run_study(config: dict[str, Any], config_dir: Path, out: Path, stages: list[str] | None = None,
              keep_going: bool = False) -> StudyContext:
    """Run the selected stages (default: the config's ``stages``, else all) into ``out``.

    A stage fails by raising or by reporting ``failures`` (repositories it could not mine, say).
    By default the first failure stops the study and nothing is written. With ``keep_going`` the
    failure is recorded in ``summary.json`` (``failed``) and the other stages run; the outputs
    are kept, and ``ctx.failed`` tells the caller what failed.
    """
    from reeng.errors import describe
    from reeng.outputs import staged_dir
    from reeng.study_config import validate_config

    config = validate_config(config)
    selected = stages or config.get("stages") or list(STAGES)
    unknown = [s for s in selected if s not in STAGES]
    if unknown:
        raise ReengError(f"unknown stage(s) {', '.join(unknown)} (known: {', '.join(STAGES)})")
    with staged_dir(out) as staging:
        ctx = StudyContext(config=config, out=staging, config_dir=config_dir)
        for name in [s for s in STAGES if s in selected]:
            started = time.perf_counter()
            click.echo(f"[{name}] …")
            try:
                result = _resolve(name)(ctx)
            except Exception as exc:
                message = describe(exc)
                if not keep_going or message is None:
                    raise
                ctx.failed[name] = {"failed": message, "complete": True}
                ctx.summary[name] = {**ctx.failed[name], "seconds": round(time.perf_counter() - started, 2)}
                click.echo(f"[{name}] failed: {message}")
                continue
            ctx.summary[name] = {**result, "seconds": round(time.perf_counter() - started, 2)}
            for line in result.get("lines", []):
                click.echo(f"[{name}] {line}")
            failures = result.get("failures") or {}
            if failures:
                message = f"{len(failures)} failure(s): " + "; ".join(str(v) for v in list(failures.values())[:3])
                if not keep_going:
                    raise ReengError(f"study stopped: stage {name} failed ({message}); nothing was written "
                                     "(--keep-going runs the other stages and keeps the outputs)")
                ctx.failed[name] = {"failed": message, "complete": False}
        (staging / "summary.json").write_text(json.dumps({**ctx.summary, "failed": ctx.failed}, indent=2, default=str),
                                              encoding="utf-8")
    ctx.out = out
    return ctx


@click.command("study")
@click.argument("config_path", metavar="[CONFIG]", required=False, type=click.Path(path_type=Path))
@click.option("--out", type=click.Path(path_type=Path), help="Output folder (default: the config's `out`).")
@click.option("--stage", "stages", multiple=True, help=f"Run only these stages (of: {', '.join(STAGES)}).")
@click.option("--keep-going", is_flag=True,
              help="Run the other stages when one fails and keep the outputs; exit 0 unless a stage failed completely.")
def study_command(config_path: Path | None, out: Path | None, stages: tuple[str, ...], keep_going: bool) -> None:
    """Run a study described by CONFIG (default: Jiang et al. 2024 on its published data)."""
    config, config_dir = load_config(config_path)
    target = (out or Path(config.get("out") or "reeng-study")).resolve()
    ctx = run_study(config, config_dir, target, list(stages) or None, keep_going=keep_going)
    click.echo(f"study outputs: {target}")
    complete = [name for name, failure in ctx.failed.items() if failure["complete"]]
    if complete:
        raise ReengError(f"stage(s) {', '.join(complete)} failed ({'; '.join(ctx.failed[n]['failed'] for n in complete)}); "
                         f"the other stages' outputs are in {target}")
