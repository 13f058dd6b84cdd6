"""Layer localization: where does a reimplementation start to diverge from its reference?

One record per **call site**, not per module: a ``ReLU`` called twice gives two records, and
functional operations between modules (``torch.flatten``, ``F.interpolate``, ``+``, ``torch.cat``)
are records of their own, owned by the module whose ``forward`` calls them. A module without
submodules is one call site even when its ``forward`` is written with functional operations. Capture first tries
``torch.fx`` symbolic tracing and runs the traced graph node by node; where tracing fails
(data-dependent control flow, unsupported Python), it falls back to per-call forward hooks on
every module plus a ``TorchFunctionMode`` that sees the functional operations in between. Both
give the same names:

- a module call: its path (``layer1.0.relu``), the k-th call of the same module ``layer1.0.relu#k``;
- a functional call: ``<owner module path>.<op>`` (``layer1.0.add``, ``flatten``), ``#k`` likewise.

In-place rewrites are handled where they happen: right before an in-place operation (``x += y``,
``ReLU(inplace=True)``, ``relu_``) consumes a recorded output or a view of one, that record is copied, so it keeps
the value its producer returned. Tuple, list and dict outputs are recorded as lists of tensors
(dict values in key order).

Per matched record, δ_L (mean absolute difference of the outputs) is set against the largest δ
of the records it consumed; the rise R_L = (δ_L − max δ_in) / (max δ_in + ε) is the measure CRADLE
and LEMON use. The culprit is the first call site in execution order whose output diverges
(δ > atol + rtol·mean|reference|) while none of its inputs does.
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

EPS = 1e-7
DEFAULT_ATOL = 1e-5
DEFAULT_RTOL = 1e-4


@dataclass
class LayerRecord:
    """What one forward pass showed at one call site.

    ``inputs`` holds, per tensor consumed, the name of the record that produced it or the tensor
    itself (a model input); ``module`` is the module called or, for a functional operation, the
    module whose ``forward`` called it; ``kind`` is ``module`` or ``function``; ``op`` the module's
    class or the operation (``conv2d``, ``relu``, ``add``), used to pair layers whose names differ.
    """

    output: Any
    inputs: list[Any]
    note: str = ""
    module: str = ""
    kind: str = "module"
    op: str = ""


class Capture(dict):
    """Call-site records in execution order; ``method`` says how they were captured (fx or hooks)."""

    method: str = ""
    fallback_reason: str = ""


@dataclass
class LayerDivergence:
    name: str
    candidate_name: str
    delta: float
    delta_in: float
    rise: float
    note: str = ""
    module: str = ""
    diverges: bool = False  # its output differs beyond atol + rtol·mean|reference|
    introduces: bool = False  # it diverges while none of its inputs does


@dataclass
class Localization:
    """Per-call-site divergences in execution order and where divergence is introduced."""

    layers: list[LayerDivergence]
    culprit: str | None
    unmatched_reference: list[str] = field(default_factory=list)
    unmatched_candidate: list[str] = field(default_factory=list)
    matched_by: str = "name"

    @property
    def culprit_module(self) -> str | None:
        """The module where divergence is introduced (a functional culprit's owner)."""
        return next((d.module for d in self.layers if d.name == self.culprit), None)

    def table(self) -> list[dict[str, Any]]:
        return [{"layer": d.name, "candidate_layer": d.candidate_name, "module": d.module, "delta": d.delta,
                 "delta_in": d.delta_in, "rise": d.rise, "diverges": d.diverges, "note": d.note,
                 "culprit": d.name == self.culprit} for d in self.layers]

    def plot(self, path: Path) -> Path:
        """δ_L per call site (log scale) with the culprit highlighted, as a PNG."""
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        import matplotlib.ticker

        names = [d.name for d in self.layers]
        finite = [d.delta for d in self.layers if d.delta != float("inf")]
        ceiling = 10 * max(finite + [EPS])  # a shape mismatch or NaN is drawn above everything finite
        deltas = [max(d.delta, EPS) if d.delta != float("inf") else ceiling for d in self.layers]
        colors = ["tab:red" if n == self.culprit else "tab:blue" for n in names]
        fig, ax = plt.subplots(figsize=(min(40.0, max(4.0, 0.3 * len(names) + 2)), 3.4))
        ax.bar(range(len(names)), deltas, color=colors)
        ax.set_yscale("log")
        # plain tick labels (1e-05): the default ones are mathtext, whose STIX fallbacks printed a dozen
        # "findfont" lines on every run where those fonts are not installed
        ax.yaxis.set_major_formatter(matplotlib.ticker.LogFormatter())
        ax.set_xticks(range(len(names)), names, rotation=70, ha="right", fontsize=6)
        ax.set_ylabel("δ (mean |Δ|)")
        ax.set_title(f"divergence introduced at: {self.culprit or 'none'}")
        fig.tight_layout()
        fig.savefig(path, dpi=110)
        plt.close(fig)
        return path


def _tensors(value: Any) -> list[Any]:
    import torch

    if isinstance(value, torch.Tensor):
        return [value]
    if isinstance(value, (list, tuple)):
        return [t for v in value for t in _tensors(v)]
    if isinstance(value, dict):  # by key: a port building the same dict in another order is no different
        return [t for k in sorted(value, key=str) for t in _tensors(value[k])]
    return []


def _op_name(target: Any) -> str:
    """``add`` for operator.add / Tensor.__add__, ``iadd`` for ``+=``, else the function's name."""
    name = target if isinstance(target, str) else getattr(target, "__name__", type(target).__name__)
    if name == "__get__":  # a tensor property such as .T or .mT
        name = getattr(getattr(target, "__self__", None), "__name__", name)
    return name.strip("_") if name.startswith("__") else name


def _is_inplace(name: str, kwargs: dict[str, Any]) -> bool:
    return bool(kwargs.get("inplace")) or (name.endswith("_") and not name.startswith("_")) or \
        name in {"iadd", "isub", "imul", "itruediv", "idiv", "iand", "ior", "ipow", "setitem"}


class _Recorder:
    """The bookkeeping shared by both capture methods."""

    def __init__(self, weights: frozenset[int] = frozenset()) -> None:
        self.records: Capture = Capture()
        self.weights = weights  # ids of the model's parameters and buffers: not inputs from upstream
        self.produced: dict[int, str] = {}  # id(output tensor) -> record name
        self.versions: dict[str, list[int]] = {}  # records still aliasing live tensors
        self.keep: list[Any] = []  # keeps produced tensors alive so their ids stay unique
        self.counts: Counter[str] = Counter()

    def call_name(self, base: str) -> str:
        self.counts[base] += 1
        return base if self.counts[base] == 1 else f"{base}#{self.counts[base]}"

    def privatize(self, consumed: list[Any]) -> None:
        """Copy the records an in-place operation is about to overwrite: those of the tensors it
        consumes and, for a view (``boxes[:, 0].clamp_()``), of the tensor it views."""
        for t in [*consumed, *(t._base for t in consumed if t._base is not None)]:
            name = self.produced.get(id(t))
            if name is not None and name in self.versions:
                rec = self.records[name]
                rec.output = [o.clone() for o in rec.output] if isinstance(rec.output, list) else rec.output.clone()
                del self.versions[name]

    def record(self, name: str, module: str, kind: str, inputs: list[Any], output: Any, op: str) -> None:
        outs = _tensors(output)
        if not outs:
            return
        ins = [self.produced.get(id(t)) or t.detach() for t in inputs if id(t) not in self.weights]
        for t in outs:
            self.produced[id(t)] = name
        self.keep.extend(outs)
        detached = [t.detach() for t in outs]
        self.records[name] = LayerRecord(detached[0] if len(detached) == 1 else detached, ins, "", module, kind,
                                         normal_op(op))
        self.versions[name] = [t._version for t in outs]

    def finish(self) -> Capture:
        for name, seen in self.versions.items():
            out = self.records[name].output
            if [t._version for t in (out if isinstance(out, list) else [out])] != seen:
                self.records[name].note = "rewritten in place after this call; compared as left at the end of the pass"
        return self.records


def _capture_fx(model: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Capture:
    import torch
    from torch import fx

    class Tracer(fx.Tracer):
        """A module without submodules is one call site, whatever its forward does: a user's
        hand-written BatchNorm or same-padding convolution is named as the module it is."""

        def is_leaf_module(self, m: torch.nn.Module, qualname: str) -> bool:
            return super().is_leaf_module(m, qualname) or not any(True for _ in m.children())

    traced = fx.GraphModule(model, Tracer().trace(model), type(model).__name__)
    rec = _Recorder()
    names: dict[fx.Node, tuple[str, str, str, str]] = {}
    for node in traced.graph.nodes:
        if node.op == "call_module":
            op = type(traced.get_submodule(node.target)).__name__
            names[node] = (rec.call_name(node.target), node.target, "module", op)
        elif node.op in ("call_function", "call_method"):
            stack = node.meta.get("nn_module_stack") or {}
            owner = next(reversed(stack.values()))[0] if stack else ""
            op = _op_name(node.target)
            names[node] = (rec.call_name(f"{owner}.{op}" if owner else op), owner, "function", op)

    class Interpreter(fx.Interpreter):
        def run_node(self, node: fx.Node) -> Any:
            if node not in names:
                return super().run_node(node)
            name, module, kind, op = names[node]
            consumed = [self.env[n] for n in node.all_input_nodes if n in self.env]
            inplace = getattr(self.module.get_submodule(node.target), "inplace", False) is True \
                if kind == "module" else _is_inplace(_op_name(node.target), node.kwargs)
            if inplace:
                rec.privatize(_tensors(consumed))
            out = super().run_node(node)
            recorded = [n for n in node.all_input_nodes if n in names and names[n][0] in rec.records]
            inputs = [t for n in recorded for t in _tensors(self.env.get(n))]
            rec.record(name, module, kind, inputs, out, op)
            return out

    with torch.no_grad():
        Interpreter(traced, garbage_collect_values=False).run(*args, *kwargs.values())
    found = rec.finish()
    found.method = "fx"
    return found


def _capture_hooks(model: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Capture:
    import torch
    from torch.overrides import TorchFunctionMode

    # a parameter used functionally (``x + self.pos_embed``) is what the call site computes with,
    # not an upstream input: a ported parameter that differs must blame that call, as under fx
    rec = _Recorder(frozenset(id(t) for t in (*model.parameters(), *model.buffers())))
    stack: list[str] = []  # module paths being called
    state = {"leaf_depth": 0, "busy": False}
    handles = []

    class Functions(TorchFunctionMode):
        def __torch_function__(self, func, types, f_args=(), f_kwargs=None):  # noqa: ANN001
            f_kwargs = f_kwargs or {}
            if state["leaf_depth"] or state["busy"]:
                return func(*f_args, **f_kwargs)
            op = _op_name(func)
            consumed = _tensors(list(f_args)) + _tensors(f_kwargs)
            state["busy"] = True
            try:
                if _is_inplace(op, f_kwargs):
                    rec.privatize(consumed)
            finally:
                state["busy"] = False
            out = func(*f_args, **f_kwargs)
            state["busy"] = True
            try:
                owner = stack[-1] if stack else ""
                if _tensors(out) and op not in ("detach", "clone"):
                    rec.record(rec.call_name(f"{owner}.{op}" if owner else op), owner, "function", consumed, out, op)
            finally:
                state["busy"] = False
            return out

    def pre(path: str, leaf: bool, inplace: bool):
        def fn(module: Any, inputs: Any) -> None:
            stack.append(path)
            if leaf:
                state["busy"] = True
                if inplace:
                    rec.privatize(_tensors(inputs))
                state["busy"] = False
                state["leaf_depth"] += 1

        return fn

    def post(path: str, leaf: bool):
        def fn(module: Any, inputs: Any, kwargs: dict[str, Any], output: Any) -> None:
            stack.pop()
            if leaf:
                state["busy"] = True
                consumed = _tensors(inputs) + _tensors(kwargs)
                rec.record(rec.call_name(path), path, "module", consumed, output, type(module).__name__)
                state["busy"] = False
                state["leaf_depth"] -= 1

        return fn

    for path, module in model.named_modules():
        if not path:
            continue
        leaf = not any(True for _ in module.children())
        handles.append(module.register_forward_pre_hook(pre(path, leaf, getattr(module, "inplace", False) is True)))
        handles.append(module.register_forward_hook(post(path, leaf), with_kwargs=True))
    try:
        with torch.no_grad(), Functions():
            model(*args, **kwargs)
    finally:
        for h in handles:
            h.remove()
    found = rec.finish()
    found.method = "hooks"
    return found


def fresh(inputs: tuple[Any, ...]) -> tuple[Any, ...]:
    """Copies of the inputs for one run: a model that rewrites its input in place (``x /= 255``)
    must not hand the next run (the port, the float64 anchor, the capture) other inputs."""
    return tuple(x.clone() if hasattr(x, "clone") else x for x in inputs)


def capture(model: Any, *args: Any, method: str = "auto", **kwargs: Any) -> Capture:
    """Run ``model`` once and return every call site's output and inputs, in execution order.

    ``method``: ``fx`` (symbolic tracing), ``hooks`` (per-call hooks plus a function mode), or
    ``auto`` (fx, falling back to hooks where tracing or running the trace fails). TorchScript
    modules take no hooks: compare their outputs only.
    """
    import torch

    if method not in ("auto", "fx", "hooks"):
        raise ValueError(f"capture method {method!r}: expected auto, fx or hooks")
    reason = ""
    if method in ("auto", "fx") and isinstance(model, torch.nn.Module) and not isinstance(model, torch.jit.ScriptModule):
        try:
            return _capture_fx(model, args, kwargs)
        except Exception as exc:  # tracing fails on data-dependent control flow and more
            if method == "fx":
                raise
            reason = f"fx tracing failed ({type(exc).__name__}: {str(exc).splitlines()[0][:120]})"
    found = _capture_hooks(model, args, kwargs)
    found.fallback_reason = reason
    return found


def _delta(a: Any, b: Any) -> tuple[float, str]:
    """Mean absolute difference (float64 accumulation); inf for a shape mismatch or NaN/Inf that
    differs (equal infinities, such as an attention mask's -inf, and NaN on both sides are equal)."""
    if isinstance(a, list) or isinstance(b, list):
        xs, ys = (a if isinstance(a, list) else [a]), (b if isinstance(b, list) else [b])
        if len(xs) != len(ys):
            return float("inf"), f"{len(xs)} outputs vs {len(ys)}"
        values = [_delta(x, y) for x, y in zip(xs, ys)]
        return max(v for v, _ in values), "; ".join(n for _, n in values if n)
    if a.shape != b.shape:
        return float("inf"), f"shape {tuple(a.shape)} vs {tuple(b.shape)}"
    if a.numel() == 0:
        return 0.0, ""
    import torch

    if a.dtype != b.dtype or not a.dtype.is_floating_point:
        a, b = a.double(), b.double()
    diff = (a - b).abs_()
    value = float(diff.sum(dtype=torch.float64)) / a.numel()
    if not math.isfinite(value):
        value = float(diff.masked_fill_((a == b) | (a.isnan() & b.isnan()), 0).sum(dtype=torch.float64)) / a.numel()
    if not math.isfinite(value):
        return float("inf"), "non-finite values"
    return value, ""


def _scale(value: Any) -> float:
    """Mean |value| of a record's output, for the relative part of the divergence threshold; NaN and
    infinities count as 0, or a reference with an -inf mask could never be diverged from."""
    import torch

    tensors = value if isinstance(value, list) else [value]
    means = [float(t.abs().nan_to_num_(0.0, 0.0).sum(dtype=torch.float64)) / t.numel() for t in tensors
             if t.numel() and t.dtype.is_floating_point]
    return max(means, default=0.0)


def _shapes(value: Any) -> tuple:
    return tuple(tuple(t.shape) for t in (value if isinstance(value, list) else [value]))


def normal_op(op: str) -> str:
    """One spelling per operation: ``ReLU``, ``relu`` and ``relu_`` are ``relu``; ``iadd`` is ``add``."""
    op = op.lower().rstrip("_")
    return {"iadd": "add", "isub": "sub", "imul": "mul", "itruediv": "truediv"}.get(op, op)


def match_by_order(reference: dict[str, LayerRecord], candidate: dict[str, LayerRecord]) -> dict[str, str]:
    """Pair call sites by execution order and output shapes, names ignored: the alignment of the
    two sequences that pairs only equal shapes and scores a pair 2 when the operations agree
    (``Conv2d`` with ``Conv2d``) and 1 otherwise, so a port's extra layer of the same shape is
    left unmatched instead of shifting every pair after it."""
    ref, cand = list(reference), list(candidate)
    rs = [(_shapes(reference[n].output), reference[n].op) for n in ref]
    cs = [(_shapes(candidate[n].output), candidate[n].op) for n in cand]
    n, m = len(ref), len(cand)

    def weight(i: int, j: int) -> int:
        if rs[i][0] != cs[j][0]:
            return 0
        return 2 if rs[i][1] and rs[i][1] == cs[j][1] else 1

    table = [[0] * (m + 1) for _ in range(n + 1)]
    for i in range(n - 1, -1, -1):
        for j in range(m - 1, -1, -1):
            w = weight(i, j)
            table[i][j] = max(table[i + 1][j], table[i][j + 1], table[i + 1][j + 1] + w if w else 0)
    pairs, i, j = {}, 0, 0
    while i < n and j < m:
        w = weight(i, j)
        if w and table[i][j] == table[i + 1][j + 1] + w:
            pairs[ref[i]] = cand[j]
            i, j = i + 1, j + 1
        elif table[i + 1][j] >= table[i][j + 1]:
            i += 1
        else:
            j += 1
    return pairs


def _default_mapping(reference: dict[str, LayerRecord], candidate: dict[str, LayerRecord]) -> tuple[dict[str, str], str]:
    """Identical names where they cover most of the reference, else execution order and shapes."""
    same_names = {name: name for name in reference if name in candidate}
    if reference and len(same_names) >= 0.5 * len(reference):
        return same_names, "name"
    return match_by_order(reference, candidate), "order and shape"


def _complete_mapping(reference: dict[str, LayerRecord], candidate: dict[str, LayerRecord],
                      mapping: dict[str, str]) -> tuple[dict[str, str], str]:
    """A user's mapping checked against both captures, its gaps filled by :func:`_default_mapping`."""
    from reeng.errors import ReengError

    for side, names, known in (("reference", list(mapping), reference), ("port", list(mapping.values()), candidate)):
        unknown = [n for n in names if n not in known]
        if unknown:
            raise ReengError(f"the mapping names {side} layer(s) the {side} does not have: {', '.join(unknown[:5])}"
                             f" (its layers: {', '.join(list(known)[:8])}{', ...' if len(known) > 8 else ''})")
    rest = {n: r for n, r in reference.items() if n not in mapping}
    if not rest:
        return dict(mapping), "mapping"
    taken = set(mapping.values())
    default, how = _default_mapping(rest, {n: r for n, r in candidate.items() if n not in taken})
    return {**default, **mapping}, f"mapping, the rest by {how}"


def _resolve(records: dict[str, LayerRecord], value: Any) -> Any:
    return records[value].output if isinstance(value, str) else value


def localize(
    reference: dict[str, LayerRecord],
    candidate: dict[str, LayerRecord],
    mapping: dict[str, str] | None = None,
    atol: float = DEFAULT_ATOL,
    strict: bool = False,
    rtol: float = DEFAULT_RTOL,
) -> Localization:
    """Compare two captures call site by call site.

    ``mapping`` maps reference names to candidate names; without it, identical names are paired
    when they cover at least half of the reference, otherwise call sites are paired by
    execution order and output shapes. A mapping naming a layer either capture lacks is an error;
    one that leaves reference layers out pairs those by the default rule (layers it pairs are
    kept out of that). Whatever stays unmatched is listed; with ``strict`` an unmatched reference
    record is an error naming them.
    """
    if mapping is None:
        mapping, matched_by = _default_mapping(reference, candidate)
    else:
        mapping, matched_by = _complete_mapping(reference, candidate, mapping)
    inverse = {v: k for k, v in mapping.items()}
    deltas: dict[str, tuple[float, bool]] = {}
    layers: list[LayerDivergence] = []
    for name, rec in reference.items():
        cand_name = mapping.get(name)
        if cand_name is None or cand_name not in candidate:
            continue
        other = candidate[cand_name]
        delta, note = _delta(other.output, rec.output)
        diverges = delta > atol + rtol * _scale(rec.output)
        in_deltas: list[tuple[float, bool]] = []
        for r_in, c_in in zip(rec.inputs, other.inputs):
            if isinstance(r_in, str) and mapping.get(r_in) == c_in and r_in in deltas:
                in_deltas.append(deltas[r_in])  # the producing call's divergence, already known
                continue
            r_val, c_val = _resolve(reference, r_in), _resolve(candidate, c_in)
            if _shapes(r_val) == _shapes(c_val):  # inputs of other shapes cannot be compared
                d = _delta(c_val, r_val)[0]
                in_deltas.append((d, d > atol + rtol * _scale(r_val)))
        delta_in = max((d for d, _ in in_deltas), default=0.0)
        deltas[name] = (delta, diverges)
        rise = (delta - delta_in) / (delta_in + EPS) if delta != float("inf") else float("inf")
        introduces = diverges and not any(flag for _, flag in in_deltas)
        notes = "; ".join(n for n in (note, rec.note, other.note) if n)
        layers.append(LayerDivergence(name, cand_name, delta, delta_in, rise, notes, rec.module, diverges, introduces))
    culprit = next((d.name for d in layers if d.introduces), None)
    if culprit is None and any(d.diverges for d in layers):
        culprit = max((d for d in layers if d.diverges), key=lambda d: d.rise).name
    found = Localization(
        layers=layers,
        culprit=culprit,
        unmatched_reference=[n for n in reference if mapping.get(n) not in candidate],
        unmatched_candidate=[n for n in candidate if n not in inverse],
        matched_by=matched_by,
    )
    if strict and found.unmatched_reference:
        from reeng.errors import ReengError

        raise ReengError(f"layer mapping leaves {len(found.unmatched_reference)} reference layer(s) unmatched: "
                         + ", ".join(found.unmatched_reference[:5]))
    return found


def localize_models(reference_model: Any, candidate_model: Any, *args: Any, mapping: dict[str, str] | None = None,
                    atol: float = DEFAULT_ATOL, strict: bool = False, rtol: float = DEFAULT_RTOL,
                    method: str = "auto") -> Localization:
    """Capture both models on the same inputs and localize where divergence is introduced."""
    return localize(capture(reference_model, *fresh(args), method=method),
                    capture(candidate_model, *fresh(args), method=method), mapping, atol, strict, rtol)
