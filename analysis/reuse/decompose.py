"""Decomposing a CNN into one module per class (Pan & Rajan, ICSE 2022), composed by voting.

A *unit* is one channel (after a convolution) or one neuron (after a hidden linear layer) at
the output of a ReLU. A unit is *active* on an input when its spatially averaged activation
exceeds ``eps`` times its mean over the training inputs. (With convolution channels as units a
plain "> 0" keeps nearly every channel: some position of a channel fires on almost any input.) For class ``c``:

1. concern identification keeps the units active on at least ``share`` of the training inputs
   of ``c`` that the model classifies correctly with confidence above ``confidence``; the others
   are removed (their output is set to zero);
2. tangling identification adds back the units active on at least ``tangle_share`` of a few
   inputs of every other class (``negatives`` per class, pooled), which the module needs to
   reject negatives. The dense reference adds back every node active on one input per other
   class (``negatives=1``, ``tangle_share`` about 1/9); with channels as units that restores
   every unit any class uses and all modules come out identical, so the default keeps the
   units that the negatives use consistently (``negatives=5``, ``tangle_share=0.5``);
3. channeling collapses the output layer to two nodes: class ``c``'s and a negative node
   whose weights and bias are the mean of the other classes'.

Only the last ``depth`` unit layers are decomposed (default: all). The earlier stages detect
strokes and edges that every class uses; removing their channels per class costs most of the
accuracy at this scale (see docs/reuse.md), so the lab's settings keep them whole in every
module and decompose the last convolution stage and the FC layer.

Modules compose by voting: when exactly one module says yes, its class wins; otherwise the most
confident module's. Module similarity is the Jaccard index of kept units. MwT's metrics (Qi et
al., ICSE 2024) are computed on the modules: kernel retention rate (KRR: kept convolution
channels over all), cohesion (mean Jaccard of the active-channel sets of two test inputs of the
same class, each through its class's module) and coupling (the same for inputs of different
classes).
"""

from __future__ import annotations

import itertools
import time
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Iterator

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from analysis.reuse.data import Dataset, Split
from analysis.reuse.networks import Network, build
from analysis.reuse.training import Progress, batches, fit, logits, quiet, seed_everything


def relus(model: Network) -> list[nn.ReLU]:
    """The ReLUs of the feature extractor, in forward order (the units live at their outputs)."""
    return [m for m in model.body.modules() if isinstance(m, nn.ReLU)]


@contextmanager
def _hooks(model: Network, masks: list[torch.Tensor] | None = None,
           record: list[list[torch.Tensor]] | None = None) -> Iterator[None]:
    """Multiply each ReLU's output by its unit mask and/or record its per-unit mean activation."""
    handles = []
    for i, relu in enumerate(relus(model)):
        def hook(_m: nn.Module, _inp: Any, out: torch.Tensor, i: int = i) -> torch.Tensor:
            if masks is not None:
                shape = (1, -1, 1, 1) if out.dim() == 4 else (1, -1)
                out = out * masks[i].to(out.dtype).view(shape)
            if record is not None:
                record[i].append((out.mean((2, 3)) if out.dim() == 4 else out).detach().cpu())
            return out
        handles.append(relu.register_forward_hook(hook))
    try:
        yield
    finally:
        for handle in handles:
            handle.remove()


@torch.no_grad()
def unit_activity(model: Network, x: torch.Tensor, masks: list[torch.Tensor] | None = None,
                  device: torch.device | None = None) -> list[torch.Tensor]:
    """Per ReLU, the (N, units) spatially averaged activations of ``model`` on ``x``."""
    model.eval()
    record: list[list[torch.Tensor]] = [[] for _ in relus(model)]
    with _hooks(model, masks, record):
        for xb, _ in batches(Split(x, torch.zeros(len(x), dtype=torch.long)), 512, False, device=device):
            model.features(xb)
    return [torch.cat(r) for r in record]


def active(activity: list[torch.Tensor], eps: float, reference: list[torch.Tensor] | None = None) -> list[torch.Tensor]:
    """Which units are active, per input: above ``eps`` times the unit's mean over ``reference`` (default: these inputs)."""
    reference = reference or activity
    return [a > eps * r.mean(0, keepdim=True) for a, r in zip(activity, reference)]


@dataclass
class Module:
    """A class's module: unit masks per ReLU and a two-node (class, negative) output layer."""

    cls: int
    masks: list[torch.Tensor]
    weight: torch.Tensor  # (2, features): row 0 the class node, row 1 the negative node
    bias: torch.Tensor

    def kept(self) -> torch.Tensor:
        return torch.cat([m.flatten() for m in self.masks])


def channel(classifier: nn.Linear, cls: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Channeling: the class node, and a negative node averaging the other classes' weights and biases."""
    w, b = classifier.weight.detach(), classifier.bias.detach()
    others = [j for j in range(w.shape[0]) if j != cls]
    return torch.stack([w[cls], w[others].mean(0)]), torch.stack([b[cls], b[others].mean()])


def decompose(model: Network, train: Split, settings: dict[str, Any], seed: int,
              device: torch.device | None = None, progress: Progress = quiet) -> list[Module]:
    """One module per class of ``model`` (concern identification, tangling identification, channeling)."""
    model = model.to(device or torch.device("cpu")).eval()
    probs = F.softmax(logits(model, train, device), 1)
    acts = active(unit_activity(model, train.x, device=device), settings["eps"])
    generator = np.random.default_rng(seed)
    num_classes = model.classifier.out_features
    modules = []
    for c in range(num_classes):
        sure = (train.y == c) & (probs.argmax(1) == c) & (probs[:, c] > settings["confidence"])
        if not bool(sure.any()):
            sure = train.y == c
        concern = [a[sure].float().mean(0) >= settings["share"] for a in acts]
        negatives = []
        for j in range(num_classes):
            pool = torch.nonzero(train.y == j).flatten().numpy()
            if j != c and len(pool):
                negatives += list(generator.choice(pool, min(settings["negatives"], len(pool)), replace=False))
        index = torch.as_tensor(negatives, dtype=torch.long)
        tangled = [a[index].float().mean(0) >= settings["tangle_share"] for a in acts]
        shared = len(acts) - settings["depth"] if settings.get("depth") else 0
        masks = [torch.ones_like(k) if i < shared else k | t for i, (k, t) in enumerate(zip(concern, tangled))]
        weight, bias = channel(model.classifier, c)
        modules.append(Module(c, masks, weight, bias))
        progress(f"decompose: module {c} keeps {float(torch.cat(masks).float().mean()):.0%} of units")
    return modules


@torch.no_grad()
def module_scores(model: Network, module: Module, x: torch.Tensor, device: torch.device | None = None) -> torch.Tensor:
    """P(yes) of ``module`` (the source ``model`` with its masks and two-node output) for each input."""
    model.eval()
    out = []
    with _hooks(model, [m.to(device) if device else m for m in module.masks]):
        for xb, _ in batches(Split(x, torch.zeros(len(x), dtype=torch.long)), 512, False, device=device):
            two = F.linear(model.features(xb), module.weight.to(xb.device), module.bias.to(xb.device))
            out.append(F.softmax(two, 1)[:, 0].cpu())
    return torch.cat(out)


def vote(scores: torch.Tensor, classes: list[int] | torch.Tensor) -> torch.Tensor:
    """Compose modules: ``scores`` is (modules, inputs) P(yes); one yes wins, otherwise the most confident."""
    classes = torch.as_tensor(classes)
    yes = scores > 0.5
    single = yes.sum(0) == 1
    winner = torch.where(single, yes.float().argmax(0), scores.argmax(0))
    return classes[winner]


def compose(parts: list[tuple[Network, Module]], x: torch.Tensor, device: torch.device | None = None) -> torch.Tensor:
    """Predicted classes of the composition of ``parts`` (each a module with the model it came from)."""
    scores = torch.stack([module_scores(m, mod, x, device) for m, mod in parts])
    return vote(scores, [mod.cls for _, mod in parts])


def jaccard(a: torch.Tensor, b: torch.Tensor) -> float:
    union = float((a | b).sum())
    return float((a & b).sum()) / union if union else 1.0


def _output_ranks(model: Network, x: torch.Tensor) -> list[bool]:
    """Per ReLU, whether it follows a convolution (its units are kernels) rather than a linear layer."""
    ranks: list[bool] = []
    handles = [r.register_forward_hook(lambda _m, _i, out: ranks.append(out.dim() == 4)) for r in relus(model)]
    try:
        with torch.no_grad():
            model.eval().features(x)
    finally:
        for h in handles:
            h.remove()
    return ranks


def mwt_metrics(model: Network, modules: list[Module], test: Split, per_class: int, seed: int,
                device: torch.device | None = None) -> dict[str, float]:
    """KRR, cohesion and coupling (MwT) over the convolution channels of the modules."""
    conv = _output_ranks(model, test.x[:1].to(device) if device else test.x[:1])
    krr = float(np.mean([float(torch.cat([m for m, c in zip(mod.masks, conv) if c]).float().mean())
                         for mod in modules]))
    generator = torch.Generator().manual_seed(seed)
    sets, labels = [], []
    for mod in modules:
        pool = torch.nonzero(test.y == mod.cls).flatten()
        pick = pool[torch.randperm(len(pool), generator=generator)[:per_class]]
        acts = unit_activity(model, test.x[pick], [m.to(device) if device else m for m in mod.masks], device)
        sets.append(torch.cat([a > 0 for a, c in zip(acts, conv) if c], 1))
        labels.append(torch.full((len(pick),), mod.cls))
    masks, y = torch.cat(sets).float(), torch.cat(labels)
    inter = masks @ masks.T
    union = masks.sum(1, keepdim=True) + masks.sum(1) - inter
    sim = inter / union.clamp_min(1)
    upper = torch.triu(torch.ones_like(sim, dtype=torch.bool), 1)
    same = (y[:, None] == y[None, :]) & upper
    other = (y[:, None] != y[None, :]) & upper
    return {"krr": krr, "cohesion": float(sim[same].mean()), "coupling": float(sim[other].mean())}


def _pair_model(spec: dict[str, Any], train: Split, val: Split, settings: dict[str, Any], seed: int,
                device: torch.device | None) -> Network:
    seed_everything(seed)
    model = build(spec["arch"], spec["width"], spec["blocks"], 2)
    fit(model, train, val, settings["scratch_epochs"], seed, lr=settings["lr"], device=device)
    return model


def _two(split: Split, a: int, b: int) -> Split:
    return split.classes((a, b), relabel=True)


def decompose_experiment(model: Network, spec: dict[str, Any], data: Dataset, other: tuple[Network, Dataset] | None,
                         train_seconds: float, settings: dict[str, Any], seed: int,
                         device: torch.device | None = None, progress: Progress = quiet) -> dict[str, Any]:
    """Decompose ``model``; composed accuracy, overlap, MwT metrics, intra/inter reuse, replacement, cost.

    ``other`` is a model of the same classes trained on a second domain (inter reuse);
    ``train_seconds`` is what training ``model`` cost (the retraining the decomposition is compared with).
    """
    device = device or torch.device("cpu")
    model = model.to(device).eval()
    started = time.perf_counter()
    modules = decompose(model, data.train, settings, seed, device, progress)
    decompose_seconds = time.perf_counter() - started
    classes = list(range(len(modules)))
    parts = [(model, m) for m in modules]
    scores = torch.stack([module_scores(model, m, data.test.x, device) for m in modules])
    composed = vote(scores, classes)
    top5 = scores.topk(5, 0).indices.T
    original = logits(model, data.test, device)
    result: dict[str, Any] = {
        "original_accuracy": float((original.argmax(1) == data.test.y).float().mean()),
        "composed_accuracy": float((composed == data.test.y).float().mean()),
        "original_top5": float((original.topk(5, 1).indices == data.test.y[:, None]).any(1).float().mean()),
        "composed_top5": float((top5 == data.test.y[:, None]).any(1).float().mean()),
        "units_kept": [float(m.kept().float().mean()) for m in modules],
        "decompose_seconds": decompose_seconds, "retrain_seconds": train_seconds,
    }
    matrix = [[jaccard(a.kept(), b.kept()) for b in modules] for a in modules]
    overlaps = [matrix[a][b] for a, b in itertools.combinations(classes, 2)]
    result["jaccard_matrix"] = matrix
    result["jaccard_mean"] = float(np.mean(overlaps))
    result["jaccard_range"] = [float(min(overlaps)), float(max(overlaps))]
    result["units_kept_per_layer"] = [float(np.mean([float(m.masks[i].float().mean()) for m in modules]))
                                      for i in range(len(modules[0].masks))]
    result.update(mwt_metrics(model, modules, data.test, settings["metric_samples"], seed, device))

    intra = []
    for a, b in itertools.combinations(classes, 2):
        test = data.test.classes((a, b), relabel=False)
        pred = compose([parts[a], parts[b]], test.x, device)
        scratch = _pair_model(spec, _two(data.train, a, b), _two(data.val, a, b), settings, seed, device)
        scratch_acc = float((logits(scratch, _two(data.test, a, b), device).argmax(1)
                             == _two(data.test, a, b).y).float().mean())
        intra.append({"pair": [a, b], "composed": float((pred == test.y).float().mean()), "scratch": scratch_acc})
        progress(f"intra reuse {a},{b}: modules {intra[-1]['composed']:.1%} scratch {scratch_acc:.1%}")
    result["intra_reuse"] = intra

    if other is not None:
        result["inter_reuse"] = _inter(parts, other, data, spec, settings, seed, device, progress)
    result["replacement"] = _replacement(model, modules, spec, data, settings, seed, device, progress)
    return result


def _inter(parts: list[tuple[Network, Module]], other: tuple[Network, Dataset], data: Dataset, spec: dict[str, Any],
           settings: dict[str, Any], seed: int, device: torch.device | None, progress: Progress) -> list[dict]:
    """Class ``a`` from this model's domain, class ``b`` from the other's; modules vs a model trained on the mix."""
    other_model, other_data = other
    other_modules = decompose(other_model.to(device).eval(), other_data.train, settings, seed, device)
    pairs = [p for p in itertools.permutations(range(len(parts)), 2)]
    rng = np.random.default_rng(seed)
    chosen = [pairs[i] for i in sorted(rng.choice(len(pairs), min(settings["inter_pairs"], len(pairs)), replace=False))]
    rows = []
    for a, b in chosen:
        def mix(part: str) -> Split:
            x = getattr(data, part).classes((a,), relabel=False)
            y = getattr(other_data, part).classes((b,), relabel=False)
            return Split(torch.cat([x.x, y.x]), torch.cat([x.y, y.y]))
        test = mix("test")
        pred = compose([parts[a], (other_model, other_modules[b])], test.x, device)
        scratch = _pair_model(spec, _two(mix("train"), a, b), _two(mix("val"), a, b), settings, seed, device)
        scratch_acc = float((logits(scratch, _two(test, a, b), device).argmax(1) == _two(test, a, b).y).float().mean())
        rows.append({"pair": [a, b], "composed": float((pred == test.y).float().mean()), "scratch": scratch_acc})
        progress(f"inter reuse {data.name}:{a} + {other_data.name}:{b}: modules {rows[-1]['composed']:.1%}")
    return rows


def _replacement(model: Network, modules: list[Module], spec: dict[str, Any], data: Dataset, settings: dict[str, Any],
                 seed: int, device: torch.device | None, progress: Progress) -> list[dict]:
    """A weak model (class ``c`` nearly unseen in training) gets the strong model's module ``c``.

    Reported: the weak model, its composition, the composition with module ``c`` replaced,
    and the strong model (a model retrained with full data: the replacement's reference).
    """
    rows = []
    for c in settings["replace_classes"]:
        keep = torch.nonzero(data.train.y == c).flatten()[: settings["weak_examples"]]
        rest = torch.nonzero(data.train.y != c).flatten()
        weak_train = data.train.subset(torch.cat([keep, rest]))
        seed_everything(seed)
        weak = build(spec["arch"], spec["width"], spec["blocks"], len(modules))
        fit(weak, weak_train, data.val, settings["weak_epochs"], seed, lr=settings["lr"], device=device)
        weak_modules = decompose(weak, weak_train, settings, seed, device)
        parts = [(weak, m) for m in weak_modules]
        before = compose(parts, data.test.x, device)
        parts[c] = (model, modules[c])
        after = compose(parts, data.test.x, device)
        acc = lambda pred: float((pred == data.test.y).float().mean())  # noqa: E731
        in_c = data.test.y == c
        rows.append({"class": c, "weak": acc(logits(weak, data.test, device).argmax(1)), "weak_composed": acc(before),
                     "replaced": acc(after), "strong": acc(logits(model, data.test, device).argmax(1)),
                     "class_recall_before": float((before[in_c] == c).float().mean()),
                     "class_recall_after": float((after[in_c] == c).float().mean())})
        progress(f"replacement of module {c}: {rows[-1]['weak_composed']:.1%} -> {rows[-1]['replaced']:.1%}")
    return rows
