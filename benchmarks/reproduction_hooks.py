"""Benchmark: call-site capture in both models + per-layer comparison against plain forward
passes of the same two models, side by side. Goal: capture + comparison ≤ 2× plain.

The model is ResNet-18 in torchvision's layout, written in plain torch (torchvision is not
available everywhere): BasicBlocks whose one ReLU module is called twice and whose forward does
``out += identity``, so every call site and every functional operation is a record.

Run: PYTHONPATH=. python benchmarks/reproduction_hooks.py [--size 160] [--batch 4] [--rounds 9] [--threads 1]
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
from torch import nn

from analysis.reproduction.localize import capture, localize, localize_models


class BasicBlock(nn.Module):
    def __init__(self, c_in: int, c_out: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(c_in, c_out, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(c_out)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(c_out)
        shortcut = stride != 1 or c_in != c_out
        self.downsample = nn.Sequential(nn.Conv2d(c_in, c_out, 1, stride, bias=False), nn.BatchNorm2d(c_out)) \
            if shortcut else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.bn2(self.conv2(self.relu(self.bn1(self.conv1(x)))))
        out += identity
        return self.relu(out)


class ResNet18(nn.Module):
    def __init__(self, classes: int = 1000) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 64, 7, 2, 3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, 2, 1)
        stages, c = [], 64
        for width, stride in ((64, 1), (128, 2), (256, 2), (512, 2)):
            stages.append(nn.Sequential(BasicBlock(c, width, stride), BasicBlock(width, width, 1)))
            c = width
        self.layer1, self.layer2, self.layer3, self.layer4 = stages
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(c, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.fc(torch.flatten(self.avgpool(x), 1))


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
    ref, cand = ResNet18().eval(), ResNet18().eval()
    cand.load_state_dict(ref.state_dict())
    x = torch.randn(args.batch, 3, args.size, args.size)

    def plain() -> None:
        with torch.no_grad():
            ref(x)
            cand(x)

    caps = (capture(ref, x), capture(cand, x))
    medians = interleaved({
        "plain": plain,
        "fx": lambda: (capture(ref, x, method="fx"), capture(cand, x, method="fx")),
        "hooks": lambda: (capture(ref, x, method="hooks"), capture(cand, x, method="hooks")),
        "compare": lambda: localize(*caps),
        "full": lambda: localize_models(ref, cand, x),
    }, args.rounds)
    print(f"model: ResNet-18 layout, {len(caps[0])} call sites per pass ({caps[0].method}), input {tuple(x.shape)}, "
          f"threads {torch.get_num_threads()}, median of {args.rounds} interleaved rounds (wall / CPU)")
    plain = medians["plain"]
    for key, label in (("plain", "plain forward of both models"), ("fx", "fx call-site capture of both"),
                       ("hooks", "hooks + function-mode capture"), ("compare", "comparison of the captures"),
                       ("full", "capture + comparison (localize)")):
        wall, cpu = medians[key]
        print(f"{label:<34} {wall * 1000:8.1f} ms / {cpu * 1000:8.1f} ms   "
              f"ratio {wall / plain[0]:.2f}x / {cpu / plain[1]:.2f}x")
    print("goal: capture + comparison <= 2x plain")


if __name__ == "__main__":
    main()
