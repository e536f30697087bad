"""Mixed precision and memory layout for training the image networks fast on the hardware at hand.

On a CPU with bfloat16 instructions (AVX512-BF16 or AMX) and on CUDA, the convolutions run under
``torch.autocast`` in bfloat16 while the weights, the optimiser and the loss stay float32; elsewhere
everything stays float32. Channels-last tensors (the trainer's model, the batches of
``transforms.training_batch``) let oneDNN and cuDNN pick their fastest kernels.
Validation and inference are not autocast: the scores that select the weights are float32 scores.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch

PRECISIONS = ("auto", "float32", "bfloat16")


def bfloat16_supported(device: torch.device) -> bool:
    """Whether this device has fast bfloat16 arithmetic (checked at run time: machines differ)."""
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    if device.type == "cpu":
        return bool(torch.backends.mkldnn.is_available() and torch.ops.mkldnn._is_mkldnn_bf16_supported())
    return False


def training_dtype(precision: str, device: torch.device) -> torch.dtype:
    """The autocast dtype of ``precision`` ("auto": bfloat16 where supported, else float32) on ``device``."""
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
    if precision == "float32" or (precision == "auto" and not bfloat16_supported(device)):
        return torch.float32
    return torch.bfloat16


@contextlib.contextmanager
def autocast(device: torch.device, dtype: torch.dtype) -> Iterator[None]:
    """``torch.autocast`` in ``dtype`` on ``device``; nothing for float32."""
    if dtype == torch.float32:
        yield
        return
    with torch.autocast(device.type, dtype=dtype):
        yield
