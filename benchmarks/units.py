"""The benchmarks' unit of time: one resnet18 forward pass at 224 px, batch 1 (timm, random weights).

Machines of one kind differ by 2x in seconds, much less in units, so every speed target is stated in
units measured in the same run as the figure it scales.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import numpy as np
import torch


def timed(fn: Callable[[], object], repeats: int) -> float:
    """Median wall time of ``fn()`` over ``repeats`` runs (after one warm-up)."""
    fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return float(np.median(times))


def resnet18_unit(repeats: int = 10) -> float:
    """Seconds of one resnet18 forward pass at 224 px, batch 1, with torch's current threads."""
    import timm

    net = timm.create_model("resnet18", pretrained=False, num_classes=0).eval()
    x = torch.randn(1, 3, 224, 224)
    with torch.inference_mode():
        return timed(lambda: net(x), max(repeats, 5))
