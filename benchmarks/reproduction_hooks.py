"""Benchmark: layer localization (hook capture in both models + per-layer comparison) against
plain forward passes of the same two models, side by side. Goal: ratio ≤ 2.

Run: PYTHONPATH=. python benchmarks/reproduction_hooks.py [--size 160] [--batch 4] [--rounds 9]
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
from torch import nn

from analysis.reproduction.localize import capture, localize, localize_models


def block(c_in: int, c_out: int, stride: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(c_in, c_out, 3, stride, 1, bias=False), nn.BatchNorm2d(c_out), nn.ReLU(inplace=True),
                         nn.Conv2d(c_out, c_out, 3, 1, 1, bias=False), nn.BatchNorm2d(c_out), nn.ReLU(inplace=True))


def model() -> nn.Sequential:
    """A ResNet-18-sized plain CNN from torch alone (torchvision is not available everywhere)."""
    widths = [64, 64, 128, 128, 256, 256, 512, 512]
    layers, c = [nn.Conv2d(3, 64, 7, 2, 3), nn.BatchNorm2d(64), nn.ReLU(inplace=True), nn.MaxPool2d(3, 2, 1)], 64
    for i, w in enumerate(widths):
        layers.append(block(c, w, 2 if i in (2, 4, 6) else 1))
        c = w
    return nn.Sequential(*layers, nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(c, 1000)).eval()


def interleaved(fns: dict, rounds: int) -> dict[str, float]:
    """Median seconds per function, timed in alternation so that load from other processes on
    a shared machine hits every contender alike."""
    for fn in fns.values():
        fn()  # warm-up
    times: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(rounds):
        for name, fn in fns.items():
            start = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - start)
    return {name: statistics.median(t) for name, t in times.items()}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--size", type=int, default=160)
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--rounds", type=int, default=9)
    args = parser.parse_args()
    torch.manual_seed(0)
    ref, cand = model(), model()
    cand.load_state_dict(ref.state_dict())
    x = torch.randn(args.batch, 3, args.size, args.size)

    def plain() -> None:
        with torch.no_grad():
            ref(x)
            cand(x)

    caps = (capture(ref, x), capture(cand, x))
    medians = interleaved({
        "plain": plain,
        "capture": lambda: (capture(ref, x), capture(cand, x)),
        "compare": lambda: localize(*caps),
        "full": lambda: localize_models(ref, cand, x),
    }, args.rounds)
    plain_s, capture_s, compare_s, full_s = (medians[k] for k in ("plain", "capture", "compare", "full"))
    n_layers = len(caps[0])
    print(f"model: {n_layers} leaf modules, input {tuple(x.shape)}, threads {torch.get_num_threads()}")
    print(f"plain forward of both models     {plain_s * 1000:8.1f} ms")
    print(f"hook capture of both models      {capture_s * 1000:8.1f} ms  ({capture_s / plain_s:.2f}x)")
    print(f"comparison of the captures       {compare_s * 1000:8.1f} ms")
    print(f"capture + comparison (localize)  {full_s * 1000:8.1f} ms  ratio {full_s / plain_s:.2f}x (goal <= 2)")


if __name__ == "__main__":
    main()
