"""GPU placement: CUDA when present, and Hugging Face ZeroGPU's ``spaces.GPU`` on the entry points.

On a ZeroGPU Space a GPU is attached only while a function decorated with ``spaces.GPU`` runs; the
``spaces`` package exists only there, so elsewhere the entry points are left as they are.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import TypeVar

F = TypeVar("F", bound=Callable)


def on_gpu(fn: F) -> F:
    """``spaces.GPU(fn)`` when the ``spaces`` package is importable (a ZeroGPU Space), else ``fn``."""
    try:
        spaces = importlib.import_module("spaces")
    except ImportError:
        return fn
    return spaces.GPU(fn)


def model_device() -> str:
    """Where the app puts its models: CUDA when present (ZeroGPU emulates it at start-up), else the CPU."""
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"
