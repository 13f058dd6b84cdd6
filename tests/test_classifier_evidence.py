"""Evidence rules, text preparation and the built-in labeler on snippets written for these tests."""

from __future__ import annotations

import pytest

from taxonomy.batch import analyse, analyse_many
from taxonomy.evidence import default_extractor, exception_label
from taxonomy.labelers import BuiltinLabeler
from taxonomy.rules import FILTER_DIMENSIONS
from taxonomy.text import MAX_PROSE_CHARS, prepare


def keys(title: str, body: str) -> set[tuple[str, str]]:
    return {(e.kind, e.label) for e in default_extractor().extract(prepare(title, [body]))}


def label(title: str, body: str, threshold: float = 0.5, discussion: tuple[str, ...] = ()) -> dict:
    """The evidence rules' labels (the first stage without text models): what these tests pin."""
    return BuiltinLabeler(threshold=threshold, text_models=None).label_many([analyse(title, [body], list(discussion))])[0]


@pytest.mark.parametrize(
    ("log", "label"),
    [
        ("ImportError: cannot import name 'foo' from 'bar'", "import"),
        ("ModuleNotFoundError: No module named 'mmcv._ext'", "import"),
        ("AttributeError: module 'torch.nn' has no attribute 'SiLU'", "library_api"),
        ("RuntimeError: CUDA out of memory. Tried to allocate 20.00 MiB", "cuda_oom"),
        ("RuntimeError: Error(s) in loading state_dict for Net: size mismatch for head.weight", "size_mismatch"),
        ("RuntimeError: cuDNN error: CUDNN_STATUS_EXECUTION_FAILED", "cuda"),
        ("FileNotFoundError: [Errno 2] No such file or directory: 'labels.txt'", "file"),
        ("ZeroDivisionError: float division by zero", "zero_division"),
    ],
)
def test_exceptions_from_tracebacks(log: str, label: str) -> None:
    body = f"It fails:\n```\nTraceback (most recent call last):\n  File \"x.py\", line 1, in <module>\n{log}\n```"
    assert ("exception", label) in keys("training fails", body)


def test_libraries_versions_commands_flags_metrics_hardware_datasets() -> None:
    body = ("I run python train.py --batch-size 8 --img 512 with torch==1.8.1, tensorflow 1.x and CUDA 11.1 "
            "on two RTX 3090 cards (multi-gpu). On my own dataset the mAP is 0.21, lower than reported, "
            "while on COCO I cannot reproduce the paper either.")
    found = keys("Low mAP", body)
    for expected in [("version", "torch"), ("version", "tensorflow"), ("version", "cuda"), ("command", "train.py"),
                     ("flag", "batch-size"), ("flag", "img"), ("metric", "map"), ("hardware", "multi_gpu"),
                     ("hardware", "gpu_model"), ("dataset", "custom"), ("dataset", "coco"),
                     ("claim", "lower_than_reported"), ("claim", "cannot_reproduce")]:
        assert expected in found, expected


def test_nan_loss_and_cpu_only() -> None:
    found = keys("loss becomes nan after 3 epochs", "I train on cpu only and the loss is nan at epoch 3.")
    assert ("claim", "nan") in found and ("hardware", "cpu_only") in found


def test_exception_label_is_other_for_unknown_messages() -> None:
    assert exception_label("WeirdError", "something odd") == "other"


def test_prose_code_logs_and_quotes_are_separated() -> None:
    body = "My words here.\n> someone else said cannot reproduce\n```\nx = 1\n```\n```\nValueError: bad\n```"
    p = prepare("title", [body])
    assert "My words" in p.prose and "cannot reproduce" not in p.prose
    assert "someone else" in p.quotes and "x = 1" in p.code and "ValueError" in p.logs


def test_quoted_claims_do_not_count_as_evidence() -> None:
    assert ("claim", "cannot_reproduce") not in keys("question", "> I cannot reproduce the results\nThanks, fixed now.")


def test_huge_log_is_capped_and_still_labeled() -> None:
    body = "The run stops with RuntimeError: CUDA out of memory.\n" + "step 1 loss 0.5 lr 0.01\n" * 60_000
    assert len(body) > 1_000_000
    p = prepare("OOM during training", [body])
    assert p.truncated and len(p.prose) <= MAX_PROSE_CHARS
    preds = label("OOM during training", body)
    assert preds["impact"].candidate == "memory_exhaustion"


def test_builtin_labels_with_evidence_and_probability() -> None:
    preds = label("ImportError after install", "After pip install I get\n```\nModuleNotFoundError: No module named 'mmcv._ext'\n```")
    assert preds["stage"].label == "environment" and preds["stage"].probability >= 0.5
    assert any("mmcv._ext" in span["text"] for span in preds["stage"].evidence)
    assert preds["root_cause"].label in ("wrong_environment_configuration", "api_defect")


@pytest.mark.parametrize(("title", "body", "reason"), [
    ("", "", "empty"),
    ("模型训练时出现错误", "我在自己的数据集上训练模型时，损失函数一直不下降，请问是什么原因？", "non_english"),
])
def test_empty_and_non_english_abstain(title: str, body: str, reason: str) -> None:
    preds = label(title, body)
    assert all(x.label is None and x.needs_review and x.reason == reason for x in preds.values())


def test_abstains_below_threshold() -> None:
    strict = label("Something about the model", "Hello, I have a small remark about the project.", threshold=0.99)
    # The filter dimensions (issue_type, reengineering) always decide: keep or drop (taxonomy.defect_filter).
    assert all(x.label is None and x.candidate is not None for d, x in strict.items() if d not in FILTER_DIMENSIONS)


def test_one_bad_row_does_not_stop_the_batch() -> None:
    rows = [("good", ["CUDA out of memory on my GPU"]), (3.5, [None]), ("also good", ["loss is nan"])]
    out = analyse_many(rows, total=3, workers=1, progress=False)
    assert out[0].prepared is not None and out[2].prepared is not None
    assert out[1].prepared is None and out[1].error
    preds = BuiltinLabeler(text_models=None).label_many(out)
    assert preds[1]["stage"].label is None and preds[0]["impact"].candidate == "memory_exhaustion"
    assert analyse(None, [None]).prepared is not None


@pytest.mark.parametrize(("title", "body", "impact"), [
    ("mAP stays at zero", "I trained 300 epochs on VOC with the default config but the mAP is very low and the loss "
     "does not converge.", "lower_accuracy"),
    ("Results differ from the README", "With the released weights I cannot achieve the reported mAP, I get 31.2.",
     "lower_accuracy"),
    ("Training got slow", "After upgrading, the training speed is 3 times slower than before on the same GPU.",
     "lower_speed"),
    ("RAM grows every epoch", "There is a memory leak in the dataloader: the memory usage keeps growing until the "
     "machine swaps.", "memory_exhaustion"),
    ("Wrong boxes after export", "The exported model gives incorrect results: wrong bounding boxes on every image.",
     "incorrect_functionality"),
    ("Loss goes to nan", "After a few hundred iterations the loss explodes and becomes nan.", "numerical_instability"),
    ("Segmentation fault in NMS", "The demo script crashed with a segmentation fault, core dumped.", "crash"),
])
def test_impact_claims_decide_the_impact(title: str, body: str, impact: str) -> None:
    """Non-crash impacts (lower accuracy, speed, memory, wrong output) are answered from the reporter's words."""
    preds = label(title, body, threshold=0.0)
    assert preds["impact"].candidate == impact
    assert preds["impact"].evidence  # the words behind it


def test_a_thread_without_impact_evidence_gets_the_prior_category() -> None:
    preds = label("Question about the project", "Hello, thanks for sharing this repository.", threshold=0.0)
    assert preds["impact"].candidate == "crash" and not preds["impact"].evidence


def test_shape_matcher_on_windows_finds_what_it_finds_on_the_whole_text() -> None:
    from taxonomy.evidence import default_extractor

    ex = default_extractor()
    text = ("torch == = 1.7.1 and python 3.8; mAP is only 0.31, ap of about 35; tf2 keras version : 2.4.0 map\n"
            "top-1 = 71.2 cuda 10.2 cudnn 8.0.5 python3 torch1.x map , is 4 recall: precision")
    doc = ex.nlp.make_doc(text)
    assert sorted(ex.shape_matches(doc)) == sorted(ex.shapes(doc)) and len(ex.shapes(doc)) >= 8
