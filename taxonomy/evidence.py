"""Rule-based evidence extraction with spaCy: the facts in a thread that decide its DL defect labels.

No English model can be downloaded here, so this uses ``spacy.blank("en")`` (tokenizer only)
with a :class:`~spacy.matcher.PhraseMatcher` for vocabularies (libraries, datasets, hardware,
claims) and a :class:`~spacy.matcher.Matcher` for shapes (``XxxError:``, ``torch 1.7``,
``--batch-size``, ``mAP 0.35``). It runs on the prose and on the failure lines of logs (see
:mod:`taxonomy.text`), both capped, so the cost per thread is bounded. Each finding keeps the
exact words that matched: they are the evidence a reviewer sees beside a proposed label.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cache
from typing import Any

import numpy as np

from taxonomy.text import PreparedText

# kind -> label -> phrases (matched case-insensitively, token by token).
PHRASES: dict[str, dict[str, tuple[str, ...]]] = {
    "library": {
        "torch": ("torch", "pytorch"), "torchvision": ("torchvision",), "tensorflow": ("tensorflow", "tf"),
        "keras": ("keras", "tf.keras"), "mmcv": ("mmcv", "mmcv-full"), "mmdet": ("mmdet", "mmdetection"),
        "cuda": ("cuda", "cuda toolkit", "nvcc"), "cudnn": ("cudnn",), "python": ("python", "python3"),
        "numpy": ("numpy",), "opencv": ("opencv", "cv2", "opencv-python"), "onnx": ("onnx", "onnxruntime"),
        "tensorrt": ("tensorrt",), "apex": ("apex",), "caffe": ("caffe",), "mxnet": ("mxnet",),
    },
    "hardware": {
        "gpu_model": ("rtx", "gtx", "titan", "v100", "a100", "p100", "k80", "t4", "2080ti", "1080ti", "3090", "tesla"),
        "multi_gpu": ("multi-gpu", "multi gpu", "multiple gpus", "multiple gpu", "ddp", "distributed training",
                      "dataparallel", "distributeddataparallel", "nccl"),
        "cpu_only": ("cpu only", "cpu-only", "on cpu", "without gpu", "--device cpu"),
        "tpu": ("tpu",),
    },
    "dataset": {
        "coco": ("coco", "ms coco", "coco2017", "coco2014"), "voc": ("voc", "pascal voc", "voc2007", "voc2012"),
        "imagenet": ("imagenet",), "cityscapes": ("cityscapes",), "kitti": ("kitti",),
        "custom": ("custom dataset", "my own dataset", "my dataset", "own dataset", "custom data", "my own data",
                   "private dataset"),
    },
    "claim": {
        "cannot_reproduce": ("cannot reproduce", "can't reproduce", "could not reproduce", "couldn't reproduce",
                             "unable to reproduce", "reproduce the result", "reproduce the results",
                             "reproduce your result", "reproduce your results", "reproduce the map",
                             "reproduce the accuracy"),
        "lower_than_reported": ("lower than reported", "lower than the paper", "lower than yours",
                                "lower than the reported", "lower map", "lower accuracy", "drop in accuracy",
                                "accuracy drop", "worse than reported", "worse than the paper", "can't achieve",
                                "cannot achieve", "could not achieve", "couldn't achieve", "can't reach the",
                                "cannot reach the", "reported results", "reported map", "reported accuracy",
                                "results in the paper"),
        "low_accuracy": ("low accuracy", "accuracy is low", "accuracy is very low", "very low accuracy", "poor accuracy",
                         "low map", "map is low", "map is very low", "very low map", "poor results", "bad results",
                         "worse results", "accuracy drops", "accuracy decreases", "accuracy decreased", "map drops",
                         "map decreases", "map decreased", "does not converge", "doesn't converge", "not converging",
                         "map is 0", "map is zero", "map of 0"),
        "slow": ("very slow", "too slow", "slower than", "much slower", "is slow", "so slow", "training is slow",
                 "inference is slow", "takes too long", "inference time", "slow training", "slow inference",
                 "training speed", "inference speed", "low fps", "fps is low", "fps drops", "speed drops",
                 "speed dropped", "takes a long time", "takes very long", "time consuming", "times slower"),
        "hang": ("hangs", "hanging", "is stuck", "gets stuck", "got stuck", "freezes", "frozen", "deadlock",
                 "never finishes"),
        "nan": ("loss is nan", "loss becomes nan", "nan loss", "loss nan", "loss is inf", "nan values", "diverges",
                "exploding gradients", "gradient explosion", "becomes nan", "become nan", "loss becomes inf",
                "inf loss", "loss explodes", "nan gradients"),
        "oom": ("out of memory", "cuda out of memory", "oom", "memoryerror"),
        "memory_growth": ("memory leak", "memory leaks", "memory leakage", "memory usage", "memory consumption",
                          "memory keeps increasing", "memory keeps growing", "memory increases", "uses too much memory",
                          "high memory", "too much memory"),
        "size_mismatch": ("size mismatch", "size mismatch for",),
        "shape": ("shape mismatch", "dimension mismatch", "wrong shape"),
        "wrong_output": ("wrong result", "wrong results", "no detections", "no boxes", "empty output",
                         "wrong prediction", "wrong predictions", "strange results", "weird results", "wrong output",
                         "incorrect result", "incorrect results", "incorrect output", "incorrect prediction",
                         "incorrect predictions", "wrong bounding boxes", "wrong boxes", "no detection", "nothing detected",
                         "detects nothing", "unexpected result", "unexpected results", "results are wrong",
                         "output is wrong", "does not work as expected", "doesn't work as expected"),
        "crash": ("crash", "crashes", "crashed", "segmentation fault", "core dumped"),
        "corrupt_data": ("corrupt", "corrupted", "broken image", "wrong labels", "mislabeled", "bad annotations",
                         "annotation error"),
    },
    "activity": {
        "modified": ("i modified", "i changed", "i added", "i replaced", "my modified", "new backbone", "custom model",
                     "my own model", "new layer", "fine-tune", "finetune", "fine tune", "fine-tuning", "finetuning",
                     "transfer learning"),
        "ported": ("port to", "ported", "reimplement", "re-implement", "reimplementation", "convert to keras",
                   "convert to tensorflow", "my implementation"),
        "default_run": ("default settings", "default config", "without any changes", "without any modification",
                        "without modification", "same config", "as in the readme", "official code"),
        "install": ("pip install", "conda install", "installation", "setup.py", "build from source"),
        "docs": ("documentation", "readme", "the docs", "wiki"),
        "feature": ("feature request", "it would be nice", "would be great", "would be nice", "please add",
                    "add support", "is there a plan", "any plan", "enhancement"),
        "question": ("how to", "how can i", "how do i", "is it possible", "could you explain"),
    },
    "component": {
        "weights": ("pretrained weights", "pre-trained weights", "checkpoint", "state_dict", "load_state_dict",
                    ".pth", "ckpt", "weights file"),
        "config": ("config file", "yaml file", "prototxt", "configuration file"),
        "evaluation": ("test.py", "val.py", "map calculation", "cocoeval", "pycocotools"),
        "hyperparameter": ("learning rate", "batch size", "batch-size", "anchors", "iou threshold", "conf_thres",
                           "iou_thres", "momentum", "weight decay", "hyperparameters", "hyperparameter"),
        "optimizer": ("optimizer", "sgd", "adam", "adamw"),
        "loss": ("loss function", "giou", "focal loss", "cross entropy", "obj loss", "cls loss", "box loss"),
        "data": ("dataloader", "data loader", "augmentation", "annotation file", "annotations", "mosaic",
                 "preprocessing", "letterbox", "label file", "label files"),
        "layer": ("backbone", "batchnorm", "batch norm", "upsample", "padding", "stride", "activation function"),
        "export": ("onnx", "tensorrt", "coreml", "tflite", "torchscript"),
    },
}

_TOKEN = re.compile(
    r"\n+|--?[A-Za-z][\w-]*|[A-Za-z_]\w*(?:[.@'/:-]\w+)*|\d+(?:\.\d+)*(?:\.x)?\w*|==|>=|<=|[^\w\s]"
)
_TOKEN_AND_SPACE = re.compile(f"({_TOKEN.pattern})([ \t])?")
_LIB_NAMES = sorted({p for labels in PHRASES["library"].values() for p in labels if " " not in p})
_METRICS = ["map", "ap", "ap50", "ap75", "map50", "map@0.5", "map@.5", "map@0.5:0.95", "map@.5:.95", "miou",
            "accuracy", "acc", "top-1", "top1", "top-5", "top5", "precision", "recall", "f1", "psnr", "ssim"]
_VERSION_SHAPES = ["d.d", "d.dd", "d.d.d", "d.dd.d", "d.d.dd", "d.x", "dd.d", "dd.d.d", "d.dd.dd", "xd.d", "xd.d.d"]
_VERSION_FILLERS = ["==", "=", ">=", "<=", "version", ":"]
_VERSIONED_NAMES = [f"{lib}{v}" for lib in ("tf", "tensorflow", "torch", "python", "cuda", "keras")
                    for v in ("1", "2", "3", "1.x", "2.x", "3.x", "1.0", "2.0", "2.1", "2.2", "2.3", "2.4")]
_METRIC_FILLERS = ["is", "of", "only", "=", "about", "just", "was"]
# Shapes the spaCy Matcher finds with lexical attributes only (computed once per word, so cheap).
# Every shape starts with a word of SHAPE_STARTS and continues over SHAPE_FILLERS (or punctuation)
# to one last word: the Matcher runs only on those windows (see EvidenceExtractor.shape_matches).
SHAPES: dict[str, list[list[dict[str, Any]]]] = {
    "version": [
        [{"LOWER": {"IN": _LIB_NAMES}}, {"LOWER": {"IN": _VERSION_FILLERS}, "OP": "*"},
         {"SHAPE": {"IN": _VERSION_SHAPES}}],
        [{"LOWER": {"IN": _VERSIONED_NAMES}}],
    ],
    "metric": [[{"LOWER": {"IN": _METRICS}}, {"IS_PUNCT": True, "OP": "?"},
                {"LOWER": {"IN": _METRIC_FILLERS}, "OP": "*"}, {"LIKE_NUM": True}]],
}
# Shapes read straight off the text: an exception with the rest of its line, commands and flags.
SHAPE_STARTS = frozenset([*_LIB_NAMES, *_VERSIONED_NAMES, *_METRICS])
SHAPE_FILLERS = frozenset([*_VERSION_FILLERS, *_METRIC_FILLERS])
_EXCEPTION = re.compile(r"\b(?:[\w.]+\.)?(?P<name>[A-Z]\w*(?:Error|Exception))\s*:\s*(?P<message>[^\n]{0,200})")
_COMMAND = re.compile(r"(?<![\w/.-])(?:[\w-]+/)*(?P<name>[\w-]+\.(?:py|sh))\b")
_FLAG = re.compile(r"(?<![\w-])--(?P<name>[A-Za-z][\w-]*)")


class RegexTokenizer:
    """A spaCy tokenizer that splits with one regular expression.

    spaCy's own English tokenizer handles prose beautifully but is slow on logs and code, which
    fill DL bug reports; this keeps identifiers (``model.24.weight``, ``train.py``, ``--img-size``,
    ``torch==1.7``) in the pieces the rules need, several times faster. Newlines stay tokens, so
    a match can be extended to the end of its line.
    """

    def __init__(self, vocab: Any) -> None:
        self.vocab = vocab

    def __call__(self, text: str) -> Any:
        from spacy.tokens import Doc

        # One pass: each token with the space or tab after it, if any (neither ever starts a token).
        pairs = _TOKEN_AND_SPACE.findall(text)
        return Doc(self.vocab, words=[w for w, _ in pairs], spaces=[bool(sp) for _, sp in pairs])


@dataclass(frozen=True)
class Evidence:
    """One finding: what kind of fact, its normalized label, the words that matched, where."""

    kind: str
    label: str
    text: str
    section: str

    def to_dict(self) -> dict[str, str]:
        return {"kind": self.kind, "label": self.label, "text": self.text, "section": self.section}

    @property
    def key(self) -> str:
        return f"{self.kind}:{self.label}"


class EvidenceExtractor:
    """spaCy blank English tokenizer plus the rule matchers; build once, reuse for every thread."""

    def __init__(self) -> None:
        import spacy
        from spacy.matcher import Matcher, PhraseMatcher

        self.nlp = spacy.blank("en")
        self.nlp.tokenizer = RegexTokenizer(self.nlp.vocab)
        self.phrases = PhraseMatcher(self.nlp.vocab, attr="LOWER")
        self._phrase_label: dict[int, tuple[str, str]] = {}
        for kind, labels in PHRASES.items():
            for label, phrases in labels.items():
                key = f"{kind}:{label}"
                self.phrases.add(key, [self.nlp.make_doc(p) for p in phrases])
                self._phrase_label[self.nlp.vocab.strings[key]] = (kind, label)
        self.shapes = Matcher(self.nlp.vocab)
        for name, patterns in SHAPES.items():
            self.shapes.add(name, patterns)
        strings = self.nlp.vocab.strings
        self._starts = np.array(sorted(strings.add(w) for w in SHAPE_STARTS), dtype=np.uint64)
        self._fillers = np.array(sorted(strings.add(w) for w in SHAPE_FILLERS), dtype=np.uint64)

    def shape_matches(self, doc: Any) -> list[tuple[int, int, int]]:
        """The shape Matcher's matches in ``doc``, found by running it only around the words shapes start with.

        A shape starts with a word of :data:`SHAPE_STARTS`, continues over fillers and
        punctuation and ends one word later, so every match lies in such a window; running the
        Matcher on the merged windows finds exactly its matches on the whole text at a small
        fraction of the cost (most words of a log or a post start no shape).
        """
        from spacy.attrs import IS_PUNCT, LOWER

        attrs = doc.to_array([LOWER, IS_PUNCT])
        starts = np.flatnonzero(_member(attrs[:, 0], self._starts))
        if not len(starts):
            return []
        filler = _member(attrs[:, 0], self._fillers) | (attrs[:, 1] != 0)
        n, windows = len(doc), []
        for i in starts.tolist():
            j = i + 1
            while j < n and filler[j]:
                j += 1
            end = min(n, j + 1)
            if windows and i < windows[-1][1]:
                windows[-1][1] = max(windows[-1][1], end)
            else:
                windows.append([i, end])
        return [(match_id, a + start, a + end) for a, b in windows for match_id, start, end in self.shapes(doc[a:b])]

    def extract_text(self, text: str, section: str) -> list[Evidence]:
        """Evidence in one piece of text (longest match wins where phrases overlap)."""
        from spacy.util import filter_spans

        if not text.strip():
            return []
        doc = self.nlp.make_doc(text)
        found: list[Evidence] = []
        spans = []
        for match_id, start, end in self.phrases(doc):
            span = doc[start:end]
            span.label_ = self.nlp.vocab.strings[match_id]
            spans.append(span)
        for span in filter_spans(spans):
            kind, label = self._phrase_label[span.label]
            found.append(Evidence(kind, label, span.text, section))
        for match_id, start, end in filter_spans_by_id(self.shape_matches(doc)):
            span = doc[start:end]
            if self.nlp.vocab.strings[match_id] == "version":
                lib = re.match(r"[A-Za-z]+", span.text)
                label = (lib.group(0).lower() if lib else "unknown").replace("pytorch", "torch")
                found.append(Evidence("version", {"tf": "tensorflow"}.get(label, label), span.text, section))
            else:
                found.append(Evidence("metric", span[0].lower_, span.text, section))
        # Each pattern needs a literal that most texts lack: test for it before scanning.
        for m in _EXCEPTION.finditer(text) if "Error" in text or "Exception" in text else ():
            message = m["message"].strip()
            found.append(Evidence("exception", exception_label(m["name"], message), f"{m['name']}: {message}".strip(), section))
        if ".py" in text or ".sh" in text:
            found.extend(Evidence("command", m["name"], m.group(0), section) for m in _COMMAND.finditer(text))
        if "--" in text:
            found.extend(Evidence("flag", m["name"].lower(), m.group(0), section) for m in _FLAG.finditer(text))
        return found

    def extract(self, prepared: PreparedText, part: str = "opening") -> list[Evidence]:
        """Evidence from one part of a thread: its title and prose, then its condensed logs.

        ``section`` records the part and the kind of text (``opening``, ``opening log``,
        ``discussion``, ``discussion log``) so that each dimension can use its own part.
        """
        head = f"{prepared.title}\n{prepared.prose}" if prepared.title else prepared.prose
        return [*self.extract_text(head, part), *self.extract_text(prepared.evidence_logs, f"{part} log")]


def _member(values: np.ndarray, sorted_set: np.ndarray) -> np.ndarray:
    """``np.isin(values, sorted_set)`` by binary search (no sorting of ``values``: several times faster here)."""
    at = np.minimum(np.searchsorted(sorted_set, values), len(sorted_set) - 1)
    return sorted_set[at] == values


def filter_spans_by_id(matches: list[tuple[int, int, int]]) -> list[tuple[int, int, int]]:
    """Drop matches nested in a longer match of the same pattern (the Matcher reports every length)."""
    kept: list[tuple[int, int, int]] = []
    for match in sorted(matches, key=lambda m: (m[1], -(m[2] - m[1]))):
        if kept and kept[-1][0] == match[0] and match[1] < kept[-1][2]:
            continue
        kept.append(match)
    return kept


# Exceptions whose meaning depends on the message: the label says what kind of failure it is.
_EXCEPTION_MESSAGES: tuple[tuple[str, re.Pattern[str]], ...] = (
    ("cuda_oom", re.compile(r"out of memory|CUBLAS_STATUS_ALLOC_FAILED|OOM when allocating", re.I)),
    ("size_mismatch", re.compile(r"size mismatch|Missing key|Unexpected key|shape .* does not match", re.I)),
    ("library_api", re.compile(r"module '[\w.]+' has no attribute|'(?:Tensor|Module|Variable|Session|Model)' object has no attribute"
                               r"|unexpected keyword argument|got an unexpected|takes \d+ positional|deprecated|has no attribute", re.I)),
    ("cuda", re.compile(r"CUDA|cuDNN|CUDNN_STATUS|device-side assert|NCCL|no kernel image", re.I)),
    ("shape", re.compile(r"shape|dimension|size of tensor|sizes of tensors|must match|expected .* got", re.I)),
    ("file", re.compile(r"No such file|cannot find|not found|does not exist", re.I)),
)
_EXCEPTION_CLASSES = {
    "ImportError": "import", "ModuleNotFoundError": "import", "MemoryError": "cuda_oom",
    "FileNotFoundError": "file", "KeyError": "key", "IndexError": "index", "TypeError": "type",
    "ValueError": "value", "ZeroDivisionError": "zero_division", "AssertionError": "assertion",
    "SyntaxError": "syntax", "NotImplementedError": "not_implemented", "OSError": "os", "KeyboardInterrupt": "hang",
}


def exception_label(name: str, message: str) -> str:
    """Map an exception and its message to a failure label (``import``, ``cuda_oom``, ``library_api``, ...)."""
    if name in ("ImportError", "ModuleNotFoundError"):
        return "import"
    for label, pattern in _EXCEPTION_MESSAGES:
        if pattern.search(message):
            return label
    return _EXCEPTION_CLASSES.get(name, "runtime" if name == "RuntimeError" else "other")


@cache
def default_extractor() -> EvidenceExtractor:
    """The process-wide extractor (building the matchers takes a moment)."""
    return EvidenceExtractor()
