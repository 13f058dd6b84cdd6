"""The Label Studio round trip against a real server on 127.0.0.1: push, two raters, pull, agreement, adjudication.

The setup installs Label Studio into its own environment once per machine (``reeng annotate
install``; the cache keeps it) and keeps a migrated empty database beside it, so each session
starts a fresh data folder in seconds. It skips only where Label Studio cannot be installed.
"""

from __future__ import annotations

import base64
import json
import os
import re
import shutil
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("label_studio_sdk", reason="reeng[annotate] is not installed")

from reeng.settings import cache_dir  # noqa: E402
from taxonomy.annotate_config import DEFECT_DIMENSIONS, NO_LABEL, result_item  # noqa: E402
from taxonomy.annotate_server import LOCAL_TEST_ADMIN, add_user, env_dir, executable, install, local_server  # noqa: E402
from taxonomy.model import load_taxonomy  # noqa: E402
from tests.conftest import run_main  # noqa: E402
from tests.test_classifier_store import make_store  # noqa: E402

pytestmark = pytest.mark.slow
TAXONOMY = load_taxonomy()
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.fixture(scope="module")
def studio(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    env = env_dir()
    logs = cache_dir() / "label-studio-install.log"
    if executable(env) is None:
        logs.parent.mkdir(parents=True, exist_ok=True)
        try:
            with logs.open("w") as log:
                install(env, log=log)
        except Exception as exc:  # no network, no disk: the one case where these tests may skip
            pytest.skip(f"Label Studio cannot be installed here ({exc}); see {logs}")
    data = tmp_path_factory.mktemp("label-studio-data")
    with (data.parent / "server.log").open("w") as log, \
            local_server(env, data, LOCAL_TEST_ADMIN, template=cache_dir() / "label-studio-test-template", log=log) as url:
        raters = {name: add_user(url, f"{name}@example.org", f"{name}-pass-2024") for name in ("alice", "bob", "carol", "dave")}
        yield {"url": url, "key": LOCAL_TEST_ADMIN["LABEL_STUDIO_USER_TOKEN"], **raters}


@pytest.fixture
def store(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> Path:
    path = make_store(tmp_path / "s.sqlite")
    code, _, err = run_main(["classify", "predict", "--builtin", "--store", str(path)], capsys)
    assert code == 0, err
    return path


def _client(studio: dict[str, str], who: str):
    from label_studio_sdk.client import LabelStudio

    return LabelStudio(base_url=studio["url"], api_key=studio["key"] if who == "admin" else studio[who])


def _cli(capsys, studio, *args: str, key: str | None = None) -> tuple[int, str, str]:
    os.environ["LABEL_STUDIO_API_KEY"] = key or studio["key"]
    try:
        return run_main(list(args), capsys)
    finally:
        del os.environ["LABEL_STUDIO_API_KEY"]


def _tasks(studio, project_title: str) -> tuple[int, list[dict]]:
    ls = _client(studio, "admin")
    project = next(p for p in ls.projects.list(title=project_title) if p.title == project_title)
    response = ls._client_wrapper.httpx_client.request(f"api/projects/{project.id}/export", method="GET",
                                                       params={"exportType": "JSON", "download_all_tasks": "true"})
    return project.id, sorted(response.json(), key=lambda t: t["id"])


def _annotate(studio, who: str, task_id: int, labels: dict[str, str], ground_truth: bool = False) -> None:
    result = [result_item(TAXONOMY, "framework", None, labels.pop("framework", "pytorch"))]
    result += [result_item(TAXONOMY, dim, 1, label) for dim, label in labels.items()]
    _client(studio, who).annotations.create(id=task_id, result=result, ground_truth=ground_truth)


def test_push_pull_two_raters_kappa_disagreements_and_adjudication(studio, store: Path, capsys) -> None:
    from sklearn.metrics import cohen_kappa_score

    code, out, err = _cli(capsys, studio, "annotate", "queue", "--store", str(store), "-n", "3", "--json")
    queue = [f"{q['repo']}#{q['number']}" for q in json.loads(out)]
    code, out, err = _cli(capsys, studio, "annotate", "push", "--store", str(store), "--queue", "3", "--project", "round trip",
                          "--url", studio["url"], "--json")
    assert code == 0, err
    pushed = json.loads(out)
    assert pushed["created"] and pushed["imported"] == 3 and pushed["with_predictions"] >= 2
    assert studio["key"] not in out + err
    project_id, tasks = _tasks(studio, "round trip")
    assert [t["data"]["reeng_thread"] for t in tasks] == queue  # least confident first
    with sqlite3.connect(store) as conn:  # recorded as the queue's choice: not a random sample (analysis.ppi warns)
        queued = {f"{r}#{n}" for r, n in conn.execute("SELECT repo, number FROM queued_threads")}
    assert queued == set(queue)
    ls = _client(studio, "admin")
    predicted = [t for t in tasks if t["predictions"]]
    assert len(predicted) == pushed["with_predictions"]
    for task in predicted:
        [prediction] = [p.dict() for p in ls.predictions.list(task=task["id"])]
        assert prediction["model_version"].startswith("builtin") and 0 < prediction["score"] <= 1
        assert {r["from_name"] for r in prediction["result"]} <= {f"{d}_1" for d in DEFECT_DIMENSIONS}
        assert all(0 < r["score"] <= 1 for r in prediction["result"])
    # pushing the whole store adds only the thread not there yet
    code, out, err = _cli(capsys, studio, "annotate", "push", "--store", str(store), "--project", "round trip",
                          "--url", studio["url"], "--json")
    assert code == 0 and json.loads(out)["imported"] == 1 and json.loads(out)["already_there"] == 3
    _, tasks = _tasks(studio, "round trip")
    assert len(tasks) == 4
    page = next(t for t in tasks if t["data"]["number"] == 1)["data"]["thread"]
    assert "<pre><code>ModuleNotFoundError: No module named &#x27;ops._ext&#x27;" in page

    # by thread number: the raters agree on stage except #3 (carol adjudicates), on impact except #2 (left open) and #4
    # (carol answers "No label")
    alice = {1: ("training", "crash"), 2: ("environment", "crash"), 3: ("modeling", "hang"), 4: ("training", "bad_performance")}
    bob = {1: ("training", "crash"), 2: ("environment", "hang"), 3: ("training", "hang"), 4: ("training", "crash")}
    by_number = {t["data"]["number"]: t["id"] for t in tasks}
    for number, task_id in by_number.items():
        for who, votes in (("alice", alice), ("bob", bob)):
            _annotate(studio, who, task_id, {"stage": votes[number][0], "impact": votes[number][1], "root_cause": "hyperparameters"})
    _annotate(studio, "carol", by_number[3], {"stage": "modeling", "impact": "hang", "root_cause": "hyperparameters"})
    _annotate(studio, "carol", by_number[4], {"stage": "training", "impact": NO_LABEL, "root_cause": "hyperparameters"})

    code, out, err = _cli(capsys, studio, "annotate", "pull", "--project", "round trip", "--url", studio["url"],
                          "--store", str(store), "--json")
    assert code == 0, err
    pulled = json.loads(out)
    assert pulled["raters"] == ["alice@example.org", "bob@example.org"] and pulled["adjudicators"] == ["carol@example.org"]
    stage = pulled["agreement"]["stage"]
    assert stage["kappa"] == pytest.approx(cohen_kappa_score([alice[n][0] for n in by_number], [bob[n][0] for n in by_number]))
    assert stage["paired_units"] == 4 and stage["agreement"] == pytest.approx(0.75)
    assert pulled["agreement"]["root_cause"]["agreement"] == 1.0
    listed = {(d["thread"], d["dimension"]): d for d in pulled["disagreement_list"]}
    assert set(listed) == {("acme/detector#2", "impact"), ("acme/detector#3", "stage"), ("acme/detector#4", "impact")}
    assert (listed[("acme/detector#4", "impact")]["final"], listed[("acme/detector#4", "impact")]["decided_by"]) == (
        NO_LABEL, "adjudicated")
    assert listed[("acme/detector#3", "stage")]["final"] == "modeling"
    assert listed[("acme/detector#3", "stage")]["labels"] == {"alice@example.org": "modeling", "bob@example.org": "training"}
    assert listed[("acme/detector#2", "impact")]["final"] is None and pulled["open_disagreements"] == 1

    conn = sqlite3.connect(store)
    conn.row_factory = sqlite3.Row
    final = {(r["number"], r["dimension"]): r for r in conn.execute("SELECT * FROM human_labels")}
    assert final[(3, "stage")]["label"] == "modeling" and final[(3, "stage")]["raters"] == "carol@example.org"
    assert final[(3, "stage")]["provenance"] == "label-studio adjudicated:carol@example.org"
    assert final[(1, "stage")]["provenance"] == "label-studio agreed:alice@example.org|bob@example.org"
    assert final[(1, "framework")]["label"] == "pytorch" and (2, "impact") not in final and (4, "impact") not in final
    assert [tuple(r) for r in conn.execute("SELECT label FROM human_annotations WHERE number = 4 AND dimension = 'impact' "
                                           "AND role = 'adjudicator'")] == [(NO_LABEL,)]
    assert re.fullmatch(rf"{re.escape(studio['url'])} round trip task \d+", final[(1, "stage")]["task"])
    assert final[(1, "stage")]["annotated_at"] is not None
    per_rater = conn.execute("SELECT rater, role, COUNT(*) n FROM human_annotations GROUP BY rater, role ORDER BY rater").fetchall()
    assert [tuple(r) for r in per_rater] == [("alice@example.org", "rater", 16), ("bob@example.org", "rater", 16),
                                            ("carol@example.org", "adjudicator", 8)]
    # the queue now skips labeled threads; a second pull changes nothing
    before = conn.execute("SELECT COUNT(*) FROM human_annotations").fetchone()[0]
    code, _, err = _cli(capsys, studio, "annotate", "pull", "--project", "round trip", "--url", studio["url"], "--store", str(store))
    assert code == 0 and conn.execute("SELECT COUNT(*) FROM human_annotations").fetchone()[0] == before


def test_three_raters_give_krippendorff_alpha(studio, store: Path, capsys) -> None:
    code, _, err = _cli(capsys, studio, "annotate", "push", "--store", str(store), "--project", "three raters", "--url", studio["url"])
    assert code == 0, err
    _, tasks = _tasks(studio, "three raters")
    votes = {"alice": ["training", "modeling", "environment", "training"], "bob": ["training", "modeling", "training", "training"],
             "dave": ["training", "environment", "environment", "training"]}
    for who, stages in votes.items():
        for task, stage in zip(tasks, stages):
            _annotate(studio, who, task["id"], {"stage": stage})
    code, out, err = _cli(capsys, studio, "annotate", "pull", "--project", "three raters", "--url", studio["url"],
                          "--store", str(store), "--raters-per-task", "3", "--json")
    assert code == 0, err
    pulled = json.loads(out)
    import krippendorff

    codes = {"environment": 0, "modeling": 1, "training": 2}
    matrix = np.array([[codes[s] for s in votes[r]] for r in ("alice", "bob", "dave")], dtype=float)
    assert pulled["agreement"]["stage"]["alpha"] == pytest.approx(krippendorff.alpha(reliability_data=matrix, level_of_measurement="nominal"))
    assert pulled["agreement"]["stage"]["kappa"] is None and pulled["final_by"] == {"label-studio agreed": 6, "label-studio majority": 2}


def test_bad_input_is_one_error_and_nothing_half_stored(studio, store: Path, capsys, monkeypatch) -> None:
    url = studio["url"]
    code, out, err = _cli(capsys, studio, "annotate", "push", "--store", str(store), "--project", "bad", "--url", url,
                          key="wrong-key-000000000000")
    assert code == 2 and "refused the API key in LABEL_STUDIO_API_KEY" in err and "wrong-key" not in out + err
    # a project made for another taxonomy version
    _client(studio, "admin").projects.create(title="old taxonomy", description="reeng taxonomy jiang2024@0.9.0",
                                             label_config="<View><Text name='t' value='$t'/></View>")
    for command in (["push", "--store", str(store)], ["pull", "--store", str(store)]):
        code, _, err = _cli(capsys, studio, "annotate", *command, "--project", "old taxonomy", "--url", url)
        assert code == 2 and "created for taxonomy jiang2024@0.9.0" in err and "jiang2024@1.0.0" in err
    code, _, err = _cli(capsys, studio, "annotate", "pull", "--store", str(store), "--project", "no such project", "--url", url)
    assert code == 2 and "has no project 'no such project'" in err

    code, _, err = _cli(capsys, studio, "annotate", "push", "--store", str(store), "--project", "bad", "--url", url)
    assert code == 0, err
    project_id, tasks = _tasks(studio, "bad")
    _annotate(studio, "alice", tasks[0]["id"], {"stage": "training"})
    conn = sqlite3.connect(store)

    def stored() -> tuple[int, ...]:
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        return tuple(conn.execute(f"SELECT COUNT(*) FROM {t}").fetchone()[0] if t in tables else 0
                     for t in ("human_labels", "human_annotations"))

    # a pull that dies halfway through writing stores nothing; the re-run completes
    import taxonomy.annotate_studio as studio_module

    def broken(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(studio_module, "write_human_labels", broken)
    code, _, err = _cli(capsys, studio, "annotate", "pull", "--store", str(store), "--project", "bad", "--url", url)
    assert code == 130 and stored() == (0, 0)
    monkeypatch.undo()
    code, _, err = _cli(capsys, studio, "annotate", "pull", "--store", str(store), "--project", "bad", "--url", url)
    assert code == 0, err
    good = stored()
    assert good[0] > 0 and good[1] > 0

    # a label outside the taxonomy: named with task, rater and value; nothing stored
    bad = [result_item(TAXONOMY, "stage", 1, "training")]
    bad[0]["value"]["choices"] = ["teleportation"]
    _client(studio, "bob").annotations.create(id=tasks[1]["id"], result=bad)
    code, _, err = _cli(capsys, studio, "annotate", "pull", "--store", str(store), "--project", "bad", "--url", url)
    assert code == 2 and f"task {tasks[1]['id']}, rater bob@example.org: stage_1 value 'teleportation'" in err
    assert stored() == good
    # a task for a thread the store does not hold
    _client(studio, "admin").projects.import_tasks(id=project_id, request=[
        {"data": {"thread": "x", "repo": "ghost/repo", "number": 9, "taxonomy": "jiang2024@1.0.0", "reeng_thread": "ghost/repo#9"},
         "annotations": [{"result": [result_item(TAXONOMY, "stage", 1, "training")]}]}])
    code, _, err = _cli(capsys, studio, "annotate", "pull", "--store", str(store), "--project", "bad", "--url", url)
    assert code == 2 and "thread ghost/repo#9 is not in the store" in err and "teleportation" in err
    assert stored() == good


def _cdp_screenshot(url: str, cookies: dict[str, str], shot: Path) -> tuple[str, list[str]]:
    """Open ``url`` in headless Chromium (DevTools protocol over a pipe): page text and the errors it logged."""
    read_cmd, write_cmd = os.pipe()
    read_evt, write_evt = os.pipe()

    def wire() -> None:  # Chromium reads commands on fd 3 and writes replies on fd 4 (dup first: a pipe may already be 3 or 4)
        cmd, evt = os.dup(read_cmd), os.dup(write_evt)
        os.dup2(cmd, 3)
        os.dup2(evt, 4)

    profile = shot.parent / "chromium-profile"
    proc = subprocess.Popen([CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--remote-debugging-pipe",
                             "--window-size=1400,2200", "--hide-scrollbars", f"--user-data-dir={profile}", "about:blank"],
                            preexec_fn=wire, close_fds=False, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    os.close(read_cmd)
    os.close(write_evt)
    out, buf, errors, ids = os.fdopen(write_cmd, "wb"), b"", [], iter(range(1, 10_000))

    def send(method: str, session: str | None = None, **params) -> dict:
        nonlocal buf
        msg_id = next(ids)
        out.write(json.dumps({"id": msg_id, "method": method, "params": params, **({"sessionId": session} if session else {})}).encode() + b"\0")
        out.flush()
        while True:
            while b"\0" not in buf:
                chunk = os.read(read_evt, 1 << 20)
                if not chunk:
                    raise RuntimeError("chromium closed the pipe")
                buf += chunk
            raw, buf = buf.split(b"\0", 1)
            message = json.loads(raw)
            if message.get("method") == "Runtime.exceptionThrown":
                errors.append(message["params"]["exceptionDetails"].get("exception", {}).get("description", "exception"))
            elif message.get("method") == "Runtime.consoleAPICalled" and message["params"]["type"] == "error":
                errors.append(" ".join(str(a.get("value", a.get("description", ""))) for a in message["params"]["args"]))
            if message.get("id") == msg_id:
                if "error" in message:
                    raise RuntimeError(f"{method}: {message['error']}")
                return message["result"]

    try:
        target = send("Target.createTarget", url="about:blank")["targetId"]
        session = send("Target.attachToTarget", targetId=target, flatten=True)["sessionId"]
        for domain in ("Page", "Runtime", "Network"):
            send(f"{domain}.enable", session)
        for name, value in cookies.items():
            send("Network.setCookie", session, name=name, value=value, url=url)
        send("Page.navigate", session, url=url)
        text, deadline = "", time.monotonic() + 90
        while time.monotonic() < deadline and "Defect 1" not in text:
            time.sleep(1)
            text = send("Runtime.evaluate", session, expression="document.body ? document.body.innerText : ''")["result"].get("value", "")
        time.sleep(2)
        text = send("Runtime.evaluate", session, expression="document.body.innerText")["result"]["value"]
        shot.write_bytes(base64.b64decode(send("Page.captureScreenshot", session, format="png")["data"]))
        return text, errors
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        out.close()
        os.close(read_evt)


@pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed (make browser: apt-get install -y chromium)")
def test_labeling_page_shows_the_thread_and_every_dimension(studio, store: Path, capsys, tmp_path: Path) -> None:
    import httpx
    from PIL import Image

    code, _, err = _cli(capsys, studio, "annotate", "push", "--store", str(store), "--project", "screenshot", "--url", studio["url"])
    assert code == 0, err
    project_id, tasks = _tasks(studio, "screenshot")
    task = next(t for t in tasks if t["data"]["number"] == 2)
    with httpx.Client(base_url=studio["url"]) as web:
        page = web.get("/user/login/")
        csrf = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page.text).group(1)
        web.post("/user/login/", data={"csrfmiddlewaretoken": csrf, "email": "alice@example.org", "password": "alice-pass-2024"},
                 headers={"Referer": f"{studio['url']}/user/login/"})
        cookies = dict(web.cookies)
    assert "sessionid" in cookies
    shot = tmp_path / "labeling.png"
    text, errors = _cdp_screenshot(f"{studio['url']}/projects/{project_id}/data?task={task['id']}", cookies, shot)
    assert "Out of memory when training" in text and "CUDA out of memory" in text
    for dim in ("framework", *DEFECT_DIMENSIONS):
        assert TAXONOMY.dimension(dim).name in text, dim
    for name in ("PyTorch", "Environment", "Data pipeline", "Crash", "Bad performance", "Re-user", "Not mentioned", "Add defect 2"):
        assert name in text, name
    assert not errors, errors
    pixels = np.asarray(Image.open(shot).convert("RGB")).reshape(-1, 3)
    assert (pixels < 245).any(axis=1).mean() > 0.05 and len(np.unique(pixels[::5], axis=0)) > 50
    if os.environ.get("REENG_SAVE_SCREENSHOT"):
        shutil.copy(shot, os.environ["REENG_SAVE_SCREENSHOT"])


def test_serve_runs_label_studio_from_its_own_environment_and_prints_the_url(studio, tmp_path: Path) -> None:
    """`reeng annotate serve` starts the server (here on a copy of the migrated template), prints the URL, stops with itself."""
    import httpx

    from taxonomy.annotate_server import free_port

    data = tmp_path / "served"
    shutil.copytree(cache_dir() / "label-studio-test-template", data)
    port = free_port()
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    proc = subprocess.Popen([sys.executable, "-m", "reeng", "annotate", "serve", "--port", str(port), "--data", str(data)],
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=env)
    try:
        line = proc.stdout.readline()
        assert line.startswith(f"Label Studio is up at http://127.0.0.1:{port}") and str(data) in line
        assert httpx.get(f"http://127.0.0.1:{port}/health", timeout=10).status_code == 200
        assert (data / "label_studio.sqlite3").exists()
    finally:
        proc.terminate()
        proc.wait(timeout=60)
    with pytest.raises(httpx.HTTPError):
        httpx.get(f"http://127.0.0.1:{port}/health", timeout=5)
