"""Benchmark: layer localization (hook capture in both models + per-layer comparison) against
plain forward passes of the same two models, side by side. Goal: ratio ≤ 2.

Run: PYTHONPATH=. python benchmarks/reproduction_hooks.py [--size 160] [--batch 4] [--rounds 9] [--threads 1]
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


def interleaved(fns: dict, rounds: int) -> dict[str, tuple[float, float]]:
    """Median (wall, CPU) seconds per function, timed in alternation so that load from other
    processes on a shared machine hits every contender alike; CPU time of this process is the
    steadier of the two there."""
    for fn in fns.values():
        fn()  # warm-up
    times: dict[str, list[tuple[float, float]]] = {name: [] for name in fns}
    for _ in range(rounds):
        for name, fn in fns.items():
            wall, cpu = time.perf_counter(), time.process_time()
            fn()
            times[name].append((time.perf_counter() - wall, time.process_time() - cpu))
    return {name: (statistics.median(w for w, _ in t), statistics.median(c for _, c in t)) for name, t in times.items()}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--size", type=int, default=160)
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--rounds", type=int, default=9)
    parser.add_argument("--threads", type=int, default=1, help="torch threads (1: least noise on a shared machine)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
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
    n_layers = len(caps[0])
    print(f"model: {n_layers} leaf modules, input {tuple(x.shape)}, threads {torch.get_num_threads()}, "
          f"median of {args.rounds} interleaved rounds (wall / CPU)")
    plain = medians["plain"]
    for key, label in (("plain", "plain forward of both models"), ("capture", "hook capture of both models"),
                       ("compare", "comparison of the captures"), ("full", "capture + comparison (localize)")):
        wall, cpu = medians[key]
        print(f"{label:<34} {wall * 1000:8.1f} ms / {cpu * 1000:8.1f} ms   "
              f"ratio {wall / plain[0]:.2f}x / {cpu / plain[1]:.2f}x")
    print("goal: capture + comparison <= 2x plain")


if __name__ == "__main__":
    main()
