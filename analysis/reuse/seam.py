"""SeaM (Qi et al., ICSE 2023): re-engineer a trained classifier for a subset of its labels.

Every Conv2d and Linear weight (and bias) of the source model gets a real-valued mask
initialised to 1.0; BatchNorm gets none. The forward pass uses ``W * 1[S > 0]``; the backward
pass passes the gradient straight through, clipped by hardtanh. A new head ``ReLU -> Linear
(num_classes, k)`` follows the original output. The loss is ``CE + alpha * mean(1[S > 0])``;
two Adam optimisers (head only; masks and head jointly) alternate by epoch in the cycle
``[head, joint x4]`` with BatchNorm in eval mode, and the source weights never change. The kept
epoch is the one with the lowest weight retention whose accuracy reaches the source model's on
the target problem -- judged here on the validation split, not on the test split as SeaM does.
"""

from __future__ import annotations

import copy
import statistics
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

import torch
import torch.nn.functional as F
from torch import nn

from analysis.reuse.data import Dataset, Split, one_vs_rest
from analysis.reuse.networks import Network
from analysis.reuse.training import Progress, batches, logits, quiet, seed_everything
from reeng.errors import ReengError

NUM_CLASSES = 10
SUBSETS = ((0, 6, 8, 9), (1, 4, 7), (2, 3, 5))


class Binarize(torch.autograd.Function):
    """``1[S > 0]`` forward; the straight-through gradient, clipped to [-1, 1], backward."""

    @staticmethod
    def forward(ctx: Any, scores: torch.Tensor) -> torch.Tensor:
        return (scores > 0).to(scores.dtype)

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> torch.Tensor:
        return F.hardtanh(grad)


class MaskedLayer(nn.Module):
    """A frozen Conv2d or Linear whose weight and bias are multiplied by binarised learnable masks."""

    def __init__(self, inner: nn.Conv2d | nn.Linear):
        super().__init__()
        self.inner = inner
        for p in inner.parameters():
            p.requires_grad_(False)
        self.weight_mask = nn.Parameter(torch.ones_like(inner.weight))
        self.bias_mask = nn.Parameter(torch.ones_like(inner.bias)) if inner.bias is not None else None

    def masked(self) -> tuple[torch.Tensor, torch.Tensor | None]:
        weight = self.inner.weight * Binarize.apply(self.weight_mask)
        bias = None if self.inner.bias is None else self.inner.bias * Binarize.apply(self.bias_mask)
        return weight, bias

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        weight, bias = self.masked()
        if isinstance(self.inner, nn.Conv2d):
            c = self.inner
            return F.conv2d(x, weight, bias, c.stride, c.padding, c.dilation, c.groups)
        return F.linear(x, weight, bias)

    def masks(self) -> list[nn.Parameter]:
        return [m for m in (self.weight_mask, self.bias_mask) if m is not None]


def attach_masks(model: nn.Module) -> list[MaskedLayer]:
    """Replace every Conv2d and Linear of ``model`` (in place) by a :class:`MaskedLayer`."""
    layers = []
    for parent in list(model.modules()):
        for name, child in list(parent.named_children()):
            if isinstance(child, (nn.Conv2d, nn.Linear)):
                masked = MaskedLayer(child)
                setattr(parent, name, masked)
                layers.append(masked)
    return layers


class Reengineered(nn.Module):
    """A masked copy of a source model and SeaM's head ``ReLU -> Linear(num_classes, k)``.

    With ``k=None`` (SeaM's fine-tuning variant) there is no extra head: the source's output
    layer stays unmasked and is trained with the masks.
    """

    def __init__(self, source: Network, k: int | None):
        super().__init__()
        self.source = copy.deepcopy(source)
        if k is None:
            # The fine-tuning variant: the source's own (new) output layer is the head, unmasked and trained.
            classifier = self.source.classifier
            self.source.classifier = nn.Identity()
            self.layers = attach_masks(self.source)
            self.source.classifier = classifier
            self.head = nn.Identity()
            for p in classifier.parameters():
                p.requires_grad_(True)
            return
        self.layers = attach_masks(self.source)
        num_classes = self.source.classifier.inner.out_features
        self.head = nn.Sequential(nn.ReLU(), nn.Linear(num_classes, k))

    def head_parameters(self) -> list[nn.Parameter]:
        if isinstance(self.head, nn.Identity):
            return list(self.source.classifier.parameters())
        return list(self.head.parameters())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.source(x))

    def mask_parameters(self) -> list[nn.Parameter]:
        return [m for layer in self.layers for m in layer.masks()]

    def retention(self) -> torch.Tensor:
        """SeaM's weight ratio: the share of weights and biases whose mask is on (differentiable, STE)."""
        return Binarize.apply(torch.cat([m.flatten() for m in self.mask_parameters()])).mean()

    def train(self, mode: bool = True) -> "Reengineered":
        super().train(mode)
        for module in self.modules():  # BatchNorm statistics stay those of the source model
            if isinstance(module, nn.modules.batchnorm._BatchNorm):
                module.eval()
        return self

    def export(self) -> nn.Module:
        """A plain model with the masked weights set to zero (what a dense engine runs)."""
        plain = copy.deepcopy(self)
        with torch.no_grad():
            for layer in plain.layers:
                weight, bias = layer.masked()
                layer.inner.weight.copy_(weight)
                if bias is not None:
                    layer.inner.bias.copy_(bias)
        for parent in list(plain.modules()):
            for name, child in list(parent.named_children()):
                if isinstance(child, MaskedLayer):
                    setattr(parent, name, child.inner)
        for p in plain.parameters():
            p.requires_grad_(True)
        return nn.Sequential(plain.source, plain.head).eval()


@dataclass
class Target:
    """One target problem: ``k`` labels made of source classes."""

    name: str
    classes: tuple[int, ...]
    one_vs_rest: bool = False

    @property
    def k(self) -> int:
        return 2 if self.one_vs_rest else len(self.classes)


def parse_targets(specs: list[str] | tuple[str, ...], num_classes: int = NUM_CLASSES) -> list[Target]:
    """Target specs: ``C-vs-rest``, ``all-vs-rest``, a class set ``0,6,8,9``, ``subsets``, or ``default``."""

    def cls(text: str, spec: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise ReengError(f"target {spec!r}: {text!r} is not a class number") from None
        if not 0 <= value < num_classes:
            raise ReengError(f"target {spec!r}: unknown class {value} (the source model has classes 0-{num_classes - 1})")
        return value

    targets: list[Target] = []
    for spec in specs:
        spec = spec.strip()
        if spec in ("default", "all-vs-rest"):
            targets += [Target(f"{c}-vs-rest", (c,), True) for c in range(num_classes)]
        if spec in ("default", "subsets"):
            targets += [Target("{" + ",".join(map(str, s)) + "}", s) for s in SUBSETS]
        if spec in ("default", "all-vs-rest", "subsets"):
            continue
        if spec.endswith("-vs-rest"):
            c = cls(spec[: -len("-vs-rest")], spec)
            targets.append(Target(f"{c}-vs-rest", (c,), True))
            continue
        classes = tuple(cls(part, spec) for part in spec.split(",") if part.strip())
        if len(set(classes)) != len(classes):
            raise ReengError(f"target {spec!r}: a class is repeated")
        if len(classes) < 2:
            raise ReengError(f"target {spec!r}: a target set needs at least two classes "
                             f"(for one class against the rest write {spec}-vs-rest)")
        targets.append(Target("{" + ",".join(map(str, classes)) + "}", classes))
    if not targets:
        raise ReengError("no target given (e.g. --targets 3-vs-rest --targets 0,6,8,9, or default)")
    return targets


def target_split(split: Split, target: Target, seed: int) -> tuple[Split, torch.Tensor]:
    """The target problem's examples (labels 0..k-1) and their original class labels."""
    if target.one_vs_rest:
        return one_vs_rest(split, target.classes[0], seed)
    part = split.classes(target.classes, relabel=True)
    return part, torch.tensor(target.classes)[part.y]


def baseline_accuracy(source_logits: torch.Tensor, original: torch.Tensor, target: Target) -> dict[str, float]:
    """The source model on the target problem: argmax over all classes, and over the target's logits only.

    For a one-vs-rest target the two coincide (the "rest" has no logit of its own).
    """
    pred = source_logits.argmax(1)
    if target.one_vs_rest:
        c = target.classes[0]
        acc = float(((pred == c) == (original == c)).float().mean())
        return {"argmax_all": acc, "restricted": acc}
    index = torch.tensor(target.classes)
    restricted = index[source_logits[:, index].argmax(1)]
    return {"argmax_all": float((pred == original).float().mean()),
            "restricted": float((restricted == original).float().mean())}


@dataclass
class SeamResult:
    """A re-engineered model and the epoch SeaM's rule kept."""

    model: Reengineered
    epoch: int
    retention: float
    val_accuracy: float
    reached: bool  # the source's validation accuracy (prune_to_thresholds: the threshold)
    history: list[dict[str, float]] = field(default_factory=list)


def _mask_epochs(model: Reengineered, train: Split, val: Split, epochs: int, seed: int, alpha: float,
                 lr_mask: float, lr_head: float, cycle: bool, batch_size: int, device: torch.device,
                 progress: Progress, label: str) -> Iterator[tuple[int, float, float]]:
    """Train masks and head epoch by epoch; yields ``(epoch, val_accuracy, retention)`` after each.

    With ``cycle`` the epochs alternate ``[head, joint x4]`` (SeaM's direct-reuse schedule);
    without it every epoch trains masks and head jointly (SeaM's ``defect_inherit`` reengineer).
    """
    head = model.head_parameters()
    optim_head = torch.optim.Adam(head, lr=lr_head)
    optim_joint = torch.optim.Adam([{"params": model.mask_parameters(), "lr": lr_mask},
                                    {"params": head, "lr": lr_head}])
    generator = torch.Generator().manual_seed(seed)
    for epoch in range(1, epochs + 1):
        optimizer = optim_head if cycle and (epoch - 1) % 5 == 0 else optim_joint
        model.train()
        for x, y in batches(train, batch_size, True, generator, device):
            optimizer.zero_grad()
            loss = F.cross_entropy(model(x), y) + alpha * model.retention()
            loss.backward()
            optimizer.step()
        model.eval()
        with torch.no_grad():
            acc = float((logits(model, val, device).argmax(1) == val.y).float().mean())
            retention = float(model.retention())
        progress(f"{label}: epoch {epoch}/{epochs} val {acc:.1%} retention {retention:.1%}")
        yield epoch, acc, retention


def reengineer(source: Network, train: Split, val: Split, k: int | None, source_val_accuracy: float, epochs: int,
               seed: int, alpha: float = 1.0, lr_mask: float = 0.01, lr_head: float = 0.01,
               batch_size: int = 64, device: torch.device | None = None,
               progress: Progress = quiet, label: str = "seam") -> SeamResult:
    """Learn SeaM masks and head for a ``k``-label problem; see the module docstring for the rule."""
    seed_everything(seed)
    device = device or torch.device("cpu")
    model = Reengineered(source, k).to(device)
    kept: tuple[int, float, float, dict] | None = None
    fallback: tuple[float, int, float, float, dict] | None = None
    history = []
    for epoch, acc, retention in _mask_epochs(model, train, val, epochs, seed, alpha, lr_mask, lr_head, True,
                                              batch_size, device, progress, label):
        history.append({"epoch": epoch, "val_accuracy": acc, "retention": retention})
        state = {n: t.detach().clone() for n, t in model.state_dict().items()}
        if acc >= source_val_accuracy and (kept is None or retention < kept[1]
                                           or (retention == kept[1] and acc > kept[2])):
            kept = (epoch, retention, acc, state)
        if fallback is None or acc - retention > fallback[0]:
            fallback = (acc - retention, epoch, retention, acc, state)
    reached = kept is not None
    epoch, retention, acc, state = kept if kept is not None else fallback[1:]
    model.load_state_dict(state)
    model.eval()
    return SeamResult(model, epoch, retention, acc, reached, history)


def prune_to_thresholds(source: Network, train: Split, val: Split, thresholds: list[float], epochs: int, seed: int,
                        alpha: float, lr_mask: float, lr_head: float, batch_size: int = 64,
                        device: torch.device | None = None, progress: Progress = quiet,
                        label: str = "seam") -> dict[float, SeamResult]:
    """SeaM's step 2 for fine-tuning: masks and the (unmasked) output layer, one prune threshold at a time.

    As in SeaM's ``defect_inherit`` reengineer, masks and output layer train jointly every epoch
    and a threshold ``t`` stops at the first epoch whose pruned share ``1 - retention`` reaches
    ``t`` (the last epoch when none does; ``reached`` says which). Every threshold follows the
    same trajectory (same seed, same data order), so one run serves them all: the model is
    copied at each threshold's stopping epoch.
    """
    seed_everything(seed)
    device = device or torch.device("cpu")
    model = Reengineered(source, None).to(device)
    pending = sorted(set(thresholds))
    out: dict[float, SeamResult] = {}
    history: list[dict[str, float]] = []
    last: tuple[int, float, float] = (0, 1.0, 0.0)
    for epoch, acc, retention in _mask_epochs(model, train, val, epochs, seed, alpha, lr_mask, lr_head, False,
                                              batch_size, device, progress, label):
        history.append({"epoch": epoch, "val_accuracy": acc, "retention": retention})
        last = (epoch, retention, acc)
        while pending and 1 - retention >= pending[0]:
            out[pending.pop(0)] = SeamResult(copy.deepcopy(model).eval(), epoch, retention, acc, True, list(history))
        if not pending:
            break
    for threshold in pending:
        out[threshold] = SeamResult(copy.deepcopy(model).eval(), last[0], last[1], last[2], False, list(history))
    return out


def nonzero_mac_ratio(model: Reengineered, example: torch.Tensor) -> float:
    """Multiply-accumulates with a nonzero (kept) weight over all MACs of the masked layers, for one input."""
    counts: list[tuple[float, float]] = []

    def hook(layer: MaskedLayer, _inputs: Any, output: torch.Tensor) -> None:
        kept = float((layer.weight_mask > 0).sum())
        total = float(layer.weight_mask.numel())
        positions = output[0, 0].numel() if output.dim() == 4 else 1
        counts.append((kept * positions, total * positions))

    handles = [layer.register_forward_hook(hook) for layer in model.layers]
    try:
        with torch.no_grad():
            model.eval()(example[:1])
    finally:
        for handle in handles:
            handle.remove()
    return sum(k for k, _ in counts) / sum(t for _, t in counts)


def _median_ms(run: Any, repeats: int) -> float:
    for _ in range(max(3, repeats // 10)):
        run()
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        run()
        times.append((time.perf_counter() - started) * 1000)
    return statistics.median(times)


def latency(model: nn.Module, example: torch.Tensor, repeats: int = 50) -> dict[str, float]:
    """Median batch-1 latency (ms) in plain torch and in ONNX Runtime, each on one thread."""
    import onnxruntime as ort

    model = copy.deepcopy(model).cpu().eval()
    x = example[:1].cpu()
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with torch.no_grad():
            torch_ms = _median_ms(lambda: model(x), repeats)
    finally:
        torch.set_num_threads(threads)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "model.onnx"
        torch.onnx.export(model, (x,), str(path), input_names=["x"], output_names=["y"], dynamo=False)
        options = ort.SessionOptions()
        options.intra_op_num_threads = 1
        options.inter_op_num_threads = 1
        session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        feed = {"x": x.numpy()}
        ort_ms = _median_ms(lambda: session.run(None, feed), repeats)
    return {"torch_ms": torch_ms, "onnxruntime_ms": ort_ms}


def seam_experiment(source: Network, data: Dataset, targets: list[Target], settings: dict[str, Any], seed: int,
                    device: torch.device | None = None, progress: Progress = quiet) -> list[dict[str, Any]]:
    """Re-engineer ``source`` for each target; retention, accuracy vs both baselines, MACs, latency."""
    device = device or torch.device("cpu")
    source = source.to(device).eval()
    source_latency = latency(source, data.test.x, settings["latency_repeats"])
    rows = []
    for target in targets:
        train, _ = target_split(data.train, target, seed)
        val, val_orig = target_split(data.val, target, seed)
        test, test_orig = target_split(data.test, target, seed)
        base_val = baseline_accuracy(logits(source, val, device), val_orig, target)["argmax_all"]
        started = time.perf_counter()
        result = reengineer(source, train, val, target.k, base_val, settings["epochs"], seed,
                            alpha=settings["alpha"], lr_mask=settings["lr_mask"], lr_head=settings["lr_head"],
                            device=device, progress=progress, label=f"seam {target.name}")
        seconds = time.perf_counter() - started
        base = baseline_accuracy(logits(source, test, device), test_orig, target)
        acc = float((logits(result.model, test, device).argmax(1) == test.y).float().mean())
        plain = result.model.export()
        timing = latency(plain, data.test.x, settings["latency_repeats"])
        rows.append({
            "target": target.name, "classes": list(target.classes), "one_vs_rest": target.one_vs_rest,
            "retention": result.retention, "epoch": result.epoch, "reached_source_on_val": result.reached,
            "accuracy": acc, "baseline_argmax_all": base["argmax_all"], "baseline_restricted": base["restricted"],
            "gain_vs_argmax_all_pp": 100 * (acc - base["argmax_all"]),
            "gain_vs_restricted_pp": 100 * (acc - base["restricted"]),
            "nonzero_mac_ratio": nonzero_mac_ratio(result.model, data.test.x.to(device)),
            "torch_ms": timing["torch_ms"], "source_torch_ms": source_latency["torch_ms"],
            "onnxruntime_ms": timing["onnxruntime_ms"], "source_onnxruntime_ms": source_latency["onnxruntime_ms"],
            "test_size": len(test), "seconds": seconds,
        })
    return rows
