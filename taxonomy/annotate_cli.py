"""``reeng annotate``: labeling sheets (offline) and Label Studio (in the browser).

The sheet subcommands (export, import, queue) are defined with the classifier's commands; this
group adds them and the Label Studio ones: config, push, pull, install, serve.
"""

from __future__ import annotations

import json
from pathlib import Path

import click

from taxonomy.annotate_config import DEFAULT_DEFECT_SLOTS
from taxonomy.classify_cli import annotate_group as sheet_group


@click.group("annotate")
def annotate_group() -> None:
    """Label threads: sheets with suggestions, or Label Studio in the browser; agreement, adjudication, active learning."""


for _name, _command in sheet_group.commands.items():
    annotate_group.add_command(_command, _name)

_URL_OPTION = click.option("--url", required=True, help="The Label Studio server, e.g. http://127.0.0.1:8080.")
_PROJECT_OPTION = click.option("--project", required=True, help="Label Studio project title.")
_ENV_OPTION = click.option("--env", "env", type=click.Path(path_type=Path),
                           help="Label Studio's own virtual environment [default: $REENG_LABEL_STUDIO_ENV or <cache>/label-studio-env].")


@annotate_group.command("config")
@click.option("--defects", default=DEFAULT_DEFECT_SLOTS, show_default=True, help="Defect groups per thread.")
def config_command(defects: int) -> None:
    """Print the Label Studio labeling config generated from the taxonomy."""
    from taxonomy.annotate_config import labeling_config
    from taxonomy.model import load_taxonomy

    click.echo(labeling_config(load_taxonomy(), defects))


@annotate_group.command("push")
@click.option("--store", required=True, type=click.Path(path_type=Path))
@click.option("--sample", type=int, help="Push the threads of this sample (see `reeng sample`).")
@click.option("--queue", "queue_size", type=int, help="Push the active-learning queue's next N threads, least confident first.")
@_PROJECT_OPTION
@_URL_OPTION
@click.option("--model", default="builtin", show_default=True, help="Whose stored predictions become pre-annotations.")
@click.option("--defects", default=DEFAULT_DEFECT_SLOTS, show_default=True, help="Defect groups per thread.")
@click.option("--json", "as_json", is_flag=True)
def push_command(store: Path, sample: int | None, queue_size: int | None, project: str, url: str, model: str,
                 defects: int, as_json: bool) -> None:
    """Create or update a Label Studio project and import threads with the classifier's pre-annotations.

    The API key is read from LABEL_STUDIO_API_KEY.
    """
    from miner.store import open_store
    from taxonomy.annotate_studio import Studio, api_key_from_env, push

    conn = open_store(store, create=False)
    result = push(conn, Studio(url, api_key_from_env()), project, sample=sample, queue_size=queue_size, model=model,
                  defects=defects)
    if as_json:
        click.echo(json.dumps(result, indent=2))
        return
    click.echo(f"{result['imported']} threads imported ({result['with_predictions']} with pre-annotations, "
               f"{result['already_there']} already there) -> {result['url']}")


@annotate_group.command("pull")
@_PROJECT_OPTION
@_URL_OPTION
@click.option("--store", required=True, type=click.Path(path_type=Path))
@click.option("--adjudicator", "adjudicators", multiple=True, help="E-mail of a user whose annotations settle disagreements (repeatable).")
@click.option("--raters-per-task", default=2, show_default=True,
              help="Annotations per task that count as ratings; a later one by someone else adjudicates.")
@click.option("--disagreements", "disagreements_out", type=click.Path(path_type=Path), help="Write the disagreement list to this CSV.")
@click.option("--json", "as_json", is_flag=True)
def pull_command(project: str, url: str, store: Path, adjudicators: tuple[str, ...], raters_per_task: int,
                 disagreements_out: Path | None, as_json: bool) -> None:
    """Fetch every rater's annotations, store them with provenance, report agreement and disagreements.

    The API key is read from LABEL_STUDIO_API_KEY.
    """
    from miner.store import open_store
    from taxonomy.annotate_studio import Studio, api_key_from_env, pull

    conn = open_store(store, create=False)
    result = pull(conn, Studio(url, api_key_from_env()), project, adjudicators=adjudicators, raters_per_task=raters_per_task)
    if disagreements_out is not None:
        import pandas as pd

        from reeng.outputs import staged_file

        with staged_file(disagreements_out) as tmp:
            pd.DataFrame([{**{k: v for k, v in d.items() if k != "labels"}, "labels": json.dumps(d["labels"])}
                          for d in result.disagreements]).to_csv(tmp, index=False)
    summary = result.summary()
    if as_json:
        click.echo(json.dumps({**summary, "disagreement_list": result.disagreements}, indent=2, ensure_ascii=False))
        return
    click.echo(f"{summary['annotations']} annotations by {len(result.raters)} rater(s) on {summary['tasks']} tasks")
    for dim, entry in summary["agreement"].items():
        kappa = "n/a" if entry["kappa"] is None else f"{entry['kappa']:.2f}"
        alpha = "n/a" if entry["alpha"] is None else f"{entry['alpha']:.2f}"
        click.echo(f"{dim:<14} kappa {kappa:>5}  alpha {alpha:>5}  paired units {entry['paired_units']}")
    click.echo(f"{summary['disagreements']} disagreements ({summary['open_disagreements']} not adjudicated); "
               f"{summary['final_labels']} final labels stored in human_labels")
    for d in result.disagreements[:20]:
        labels = ", ".join(f"{r}: {v}" for r, v in d["labels"].items())
        click.echo(f"  {d['thread']} defect {d['defect_index']} {d['dimension']}: {labels} -> {d['final'] or 'open'}")


@annotate_group.command("install")
@_ENV_OPTION
def install_command(env: Path | None) -> None:
    """Install Label Studio into its own virtual environment (once; a complete one is left alone)."""
    import sys

    from taxonomy.annotate_server import env_dir, install

    where = env_dir(env)
    click.echo(f"installing Label Studio into {where} (a few minutes the first time)", err=True)
    click.echo(install(where, log=sys.stderr))


@annotate_group.command("serve")
@click.option("--port", default=8080, show_default=True)
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--data", type=click.Path(path_type=Path), help="Folder for Label Studio's database and files [default: <cache>/label-studio-data].")
@_ENV_OPTION
def serve_command(port: int, host: str, data: Path | None, env: Path | None) -> None:
    """Run a local Label Studio (SQLite, data in a folder you choose) and print its URL."""
    from reeng.settings import cache_dir
    from taxonomy.annotate_server import env_dir, serve

    serve(env_dir(env), data or cache_dir() / "label-studio-data", port, host)
