"""Shared builders for the tests: a tiny CPU model and a few images."""

from __future__ import annotations

import numpy as np
import torch

from diffmic.config import DiffMICConfig
from diffmic.model import DiffMIC

TINY = "test_efficientnet"  # timm's ~100k-parameter test network


def tiny_config(num_classes: int = 3, **overrides) -> DiffMICConfig:
    """A config small enough to build and run in milliseconds."""
    values = dict(
        class_names=[f"c{i}" for i in range(num_classes)],
        image_size=64,
        local_scale=2,
        global_backbone=TINY,
        local_backbone=TINY,
        output_stride=16,
        crop_size=16,
        num_crops=3,
        feature_dim=32,
        attention_dim=16,
        timesteps=100,
    )
    values.update(overrides)
    return DiffMICConfig(**values)


def tiny_model(num_classes: int = 3, seed: int = 0, **overrides) -> DiffMIC:
    """A randomly initialised tiny DiffMIC in eval mode."""
    torch.manual_seed(seed)
    return DiffMIC(tiny_config(num_classes, **overrides)).eval()


def random_image(size: int = 80, seed: int = 0) -> np.ndarray:
    """A random RGB uint8 image."""
    return np.random.default_rng(seed).integers(0, 256, (size, size + 7, 3), dtype=np.uint8)
