"""Speed work must not change what the classifier says: outputs on snippets written for this test, pinned.

``classifier_pinned.json`` (next to this file) holds what the code produced on these threads
before the speed work: the role split, the prepared text, the evidence, and the supervised
models' probabilities. The built-in labeler's labels and probabilities are compared on the
pinned analyses against fresh ones, so the test keeps its meaning when the labeler's rules change
(another issue changes them) while any change in preparation or evidence shows up here.
A deliberate change of preparation (``text.PREPARE_VERSION``) or of the supervised models'
defaults regenerates the file with :func:`compute`. Version 2 (frames in condensed logs, long logs
condensed, not cut) changed threads 1, 9 and 11 and the supervised probabilities; version 3 (each
post keeps its ends) thread 9 and the supervised probabilities; the evidence weight 0.15
(builtin@10) the full models' probabilities only.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

PINNED = Path(__file__).with_name("classifier_pinned.json")
LONG = 1_500  # text fields longer than this are pinned by length and SHA-256

_TRACE = ("Traceback (most recent call last):\n  File \"tools/train.py\", line 88, in <module>\n    main()\n"
          "  File \"/opt/conda/lib/python3.8/site-packages/torch/nn/modules/module.py\", line 727, in _call_impl\n"
          "RuntimeError: CUDA out of memory. Tried to allocate 1.20 GiB (GPU 0; 10.76 GiB total capacity)\n")
_TRAIN_LOG = "\n".join(f"Epoch {e}/300 iter {i}/500 loss_cls 0.{e:03d} loss_box 1.{i:03d} lr 0.0{e % 9}"
                       for e in range(1, 40) for i in range(0, 500, 25))
_STALE = "This issue has been automatically marked as stale because it has not had recent activity."
_WELCOME = ("👋 Hello @newcomer, thank you for your interest in the detector! Please visit the Custom Data tutorial and "
            "the docker quickstart.")

# (title, body, [(author, comment)], reporter): threads written for this test, not taken from any archive.
THREADS: list[tuple[str | None, str | None, list[tuple[str | None, str]], str | None]] = [
    ("mAP lower than reported on COCO", "I trained with the default config and got mAP of 0.312, lower than the paper "
     "(0.37). torch==1.7.1, cuda 10.2, python 3.8, 4 GPUs with DistributedDataParallel.\n"
     "```\npython tools/train.py configs/det.py --gpus 4 --seed 0\n```",
     [("alice", "Forgot to say: batch size 8, learning rate 0.02."), ("maint", "Your learning rate is too high for "
      "batch size 8; scale it linearly. See [the notes](https://example.org/notes.md)."),
      ("github-actions[bot]", _STALE)], "alice"),
    ("CUDA out of memory during training", f"Training crashes after a few iterations.\n```\n{_TRACE}```\nAny idea?",
     [("bob", "> Training crashes after a few iterations.\nSame here on a 1080ti with my own dataset."),
      ("maint", "Reduce --batch-size or use --img-size 512; fixed in the yaml file on master."),
      ("stale", "closing due to inactivity automatically")], "carol"),
    ("Size mismatch when loading pretrained weights", "```\nRuntimeError: Error(s) in loading state_dict for Net:\n"
     "\tsize mismatch for head.cls.weight: copying a param with shape torch.Size([80, 256]) from checkpoint, "
     "the shape in current model is torch.Size([20, 256]).\n```\nI fine-tune on my custom dataset with 20 classes.",
     [("dave", "I changed num_classes in the config file but it still fails."),
      ("maint", "Drop the head from the checkpoint before load_state_dict, the anchors differ too.")], "dave"),
    ("ImportError after pip install", "pip install mmcv-full then\n    from mmcv.ops import nms\n    "
     "ImportError: cannot import name 'nms'\nmmcv 1.3.0, mmdet 2.11.0, tensorflow 2.4 not installed.",
     [("erin", "Solved: I built from source with the matching CUDA version.")], "erin"),
    ("Loss becomes NaN", f"Loss becomes nan after epoch 3 with the focal loss.\n{_TRAIN_LOG[:4000]}\n"
     "Using Adam with learning rate 0.01, anchors from kmeans.", [], "frank"),
    ("Inference is very slow", "Inference time is 2 s per image on a V100, much slower than reported. "
     "Converted to ONNX and TensorRT, still slow. <img src=\"https://example.org/a.png\"> @someone",
     [("frank2", "![plot](https://example.org/p.png) top-1 accuracy is 71.2 though."), ("ghost", _WELCOME)], "frank2"),
    ("训练时报错", "运行 train.py 时出现错误，请问如何解决？谢谢", [("x", "我也遇到了")], "x"),
    (None, "", [], None),
    ("Only code", "```\nimport torch\nx = torch.randn(2, 3)\nprint(x @ x.T)\n```", [], None),
    ("Huge log", "Here is my whole log:\n```\n" + _TRAIN_LOG * 12 + "\n" + _TRACE + "```\n"
     "It hangs at the end, the process is stuck.", [("hank", _TRAIN_LOG)], "hank"),
    ("Denchmark style thread", "Model zoo weights give wrong results: no detections on the demo image.",
     [("ivy", "Thanks for the report, I will look into it."), ("ivy", "It was the letterbox preprocessing, fixed in #12."),
      ("ivy", "Are you satisfied with the resolution of your issue?")], "ivy"),
    ("Feature request: add support for keras", "It would be nice to port to keras. Is there a plan? "
     "How can I convert to tensorflow? The documentation and readme say nothing.",
     [(None, "+1, would be great."), ("jack", "KeyError: 'model' when I tried my implementation")], None),
    ("Segmentation fault on CPU only", "Running on cpu only with --device cpu gives a segmentation fault (core dumped) "
     "in the dataloader with 8 workers; mosaic augmentation on.\n\n    Fatal Python error: Segmentation fault\n"
     "    Thread 0x00007f (most recent call first):\n", [("kim", "Works with workers 0.")], "kim"),
]
# Labels for the supervised models (two targets), written with the threads.
KIND = ["performance", "crash", "crash", "crash", "numeric", "performance", "crash", "crash", "crash", "hang",
        "wrong", "question", "crash"]
PART = ["training", "training", "model", "env", "training", "deploy", "training", "env", "env", "training",
        "data", "env", "data"]


def _thread(i: int) -> Any:
    from types import SimpleNamespace

    title, body, comments, reporter = THREADS[i]
    return SimpleNamespace(title=title, body=body, issue={"author": reporter} if reporter else {},
                           comments=[{"author": a, "body": b} for a, b in comments], repo="test/pinned", number=i + 1)


def _text(value: str) -> Any:
    if len(value) <= LONG:
        return value
    return {"len": len(value), "sha256": hashlib.sha256(value.encode()).hexdigest()}


def _prepared(p: Any) -> Any:
    if p is None:
        return None
    return {"title": _text(p.title), "prose": _text(p.prose), "code": _text(p.code), "logs": _text(p.logs),
            "quotes": _text(p.quotes), "words": p.words, "english": p.english, "truncated": p.truncated,
            "flags": list(p.flags), "evidence_logs": _text(p.evidence_logs), "model_text": _text(p.model_text)}


def _analyses(workers: int) -> list[Any]:
    from taxonomy.batch import analyse_many
    from taxonomy.thread import RawThread

    return analyse_many([RawThread.of(_thread(i)) for i in range(len(THREADS))], workers=workers, progress=False)


def _snapshot(analysed: list[Any]) -> list[dict[str, Any]]:
    from taxonomy.thread import thread_parts

    out = []
    for i, a in enumerate(analysed):
        parts = thread_parts(_thread(i))
        out.append({
            "parts": {"title": parts.title, "opening": [_text(t) for t in parts.opening],
                      "discussion": [_text(t) for t in parts.discussion], "dropped": parts.dropped_bot_comments,
                      "authors_known": parts.authors_known},
            "error": a.error, "whole": _prepared(a.prepared), "opening": _prepared(a.opening),
            "evidence": [e.to_dict() for e in a.evidence]})
    return out


def _model_probabilities(analysed: list[Any], tmp: Path) -> dict[str, Any]:
    from taxonomy.rules import rule_features
    from taxonomy.supervised import load, predict_proba, save, train

    ok = [i for i, a in enumerate(analysed) if a.prepared is not None and a.prepared.english]
    prepared = [analysed[i].prepared for i in ok]
    evidence = [rule_features(analysed[i].evidence) for i in ok]
    labels = {"kind": [KIND[i] for i in ok], "part": [PART[i] for i in ok]}
    out: dict[str, Any] = {"rows": ok}
    for name, fast in (("fast", True), ("full", False)):
        model = train(prepared, None if fast else evidence, labels, fast=fast)
        probs = predict_proba(model, prepared, None if fast else evidence)
        save(model, tmp / f"{name}.skops")
        loaded = predict_proba(load(tmp / f"{name}.skops"), prepared, None if fast else evidence)
        for t in probs:
            np.testing.assert_allclose(loaded[t], probs[t], rtol=0, atol=1e-12)
        out[name] = {t: {"classes": model.classes(t), "p": np.round(p, 10).tolist()} for t, p in probs.items()}
    return out


def compute(tmp: Path, workers: int = 1) -> dict[str, Any]:
    analysed = _analyses(workers)
    return {"threads": _snapshot(analysed), "models": _model_probabilities(analysed, tmp)}


@pytest.fixture(scope="module")
def pinned() -> dict[str, Any]:
    return json.loads(PINNED.read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def fresh(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    return compute(tmp_path_factory.mktemp("pinned"), workers=2)


def test_roles_prepared_text_and_evidence_unchanged(pinned: dict[str, Any], fresh: dict[str, Any]) -> None:
    assert len(fresh["threads"]) == len(THREADS)
    for i, (old, new) in enumerate(zip(pinned["threads"], fresh["threads"])):
        assert new == old, f"thread {i} ({THREADS[i][0]!r}) changed"
    # the snippets exercise what they are meant to: bots dropped, evidence found, a non-English abstention
    assert sum(t["parts"]["dropped"] for t in fresh["threads"]) >= 4
    assert all(fresh["threads"][i]["evidence"] for i in (0, 1, 2, 3, 4, 11, 12))
    assert fresh["threads"][6]["whole"]["flags"] == ["non_english"]


def test_supervised_probabilities_unchanged_and_survive_save_load(pinned: dict[str, Any], fresh: dict[str, Any]) -> None:
    assert fresh["models"]["rows"] == pinned["models"]["rows"]
    for kind in ("fast", "full"):
        for target, old in pinned["models"][kind].items():
            new = fresh["models"][kind][target]
            assert new["classes"] == old["classes"]
            np.testing.assert_allclose(new["p"], old["p"], rtol=0, atol=1e-9)


def test_builtin_labels_and_probabilities_unchanged(pinned: dict[str, Any]) -> None:
    """The built-in labeler says the same on the pinned analyses as on fresh ones (labels and probabilities)."""
    from taxonomy.batch import Analysed
    from taxonomy.evidence import Evidence
    from taxonomy.labelers import BuiltinLabeler
    from taxonomy.text import PreparedText

    def rebuild(p: dict[str, Any] | None) -> PreparedText | None:
        if p is None:
            return None
        fields = {k: (v if not isinstance(v, dict) else "x" * v["len"]) for k, v in p.items()
                  if k not in ("evidence_logs", "model_text")}
        return PreparedText(**fields)

    old = [Analysed(rebuild(t["whole"]), [Evidence(**e) for e in t["evidence"]], t["error"], rebuild(t["opening"]))
           for t in pinned["threads"]]
    labeler = BuiltinLabeler(threshold=0.5)
    before, after = labeler.label_many(old), labeler.label_many(_analyses(1))
    assert any(p.label for row in after for p in row.values())
    for i, (b, a) in enumerate(zip(before, after)):
        assert {d: (p.label, p.candidate, round(p.probability, 10), p.evidence) for d, p in a.items()} == \
               {d: (p.label, p.candidate, round(p.probability, 10), p.evidence) for d, p in b.items()}, f"thread {i}"
