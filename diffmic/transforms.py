"""Image preprocessing (stored in the config, applied for the caller) and training augmentation."""

from __future__ import annotations

import numpy as np
import torch
from PIL import Image

from .config import DiffMICConfig


def center_square(image: Image.Image) -> Image.Image:
    """Crop the largest centred square (fundus and dermoscopy photos are roughly centred)."""
    w, h = image.size
    side = min(w, h)
    left, top = (w - side) // 2, (h - side) // 2
    return image.crop((left, top, left + side, top + side))


def pad_square(image: Image.Image) -> Image.Image:
    """The whole image centred on a black square of its longer side (nothing is cut off)."""
    w, h = image.size
    side = max(w, h)
    if w == h:
        return image
    canvas = Image.new(image.mode, (side, side))
    canvas.paste(image, ((side - w) // 2, (side - h) // 2))
    return canvas


def resize_square(image: Image.Image, size: int, square: str = "crop") -> np.ndarray:
    """Make the image square (``square``: "crop" the largest centred square, or "pad" the whole image onto
    black; a task's ``tasks.Preprocessing.square``), resize to size x size; returns uint8 (size, size, 3)."""
    if square not in ("crop", "pad"):
        raise ValueError(f"square must be 'crop' or 'pad', got {square!r}")
    image = (center_square if square == "crop" else pad_square)(image.convert("RGB"))
    if image.size != (size, size):
        image = image.resize((size, size), Image.Resampling.BILINEAR, reducing_gap=None)
    return np.array(image, dtype=np.uint8)


def normalise(pixels: np.ndarray | torch.Tensor, config: DiffMICConfig) -> torch.Tensor:
    """uint8 (..., H, W, 3) pixels → float (..., 3, H, W) normalised with the config's mean/std."""
    x = torch.as_tensor(np.asarray(pixels)).float().div(255.0).movedim(-1, -3)
    mean = torch.tensor(config.mean).view(3, 1, 1)
    std = torch.tensor(config.std).view(3, 1, 1)
    return (x - mean) / std


def denormalise(x: torch.Tensor, config: DiffMICConfig) -> np.ndarray:
    """Inverse of ``normalise`` for display: (3, H, W) → float (H, W, 3) in [0, 1]."""
    mean = torch.tensor(config.mean).view(3, 1, 1)
    std = torch.tensor(config.std).view(3, 1, 1)
    return (x.detach().cpu() * std + mean).clamp(0, 1).permute(1, 2, 0).numpy()


def augment(x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Random flips, 90-degree rotations and brightness/contrast jitter of a normalised (B, 3, H, W) batch."""
    b = x.shape[0]
    r = torch.rand(b, 4, generator=generator)
    x = torch.where((r[:, 0] < 0.5).view(b, 1, 1, 1), x.flip(-1), x)
    x = torch.where((r[:, 1] < 0.5).view(b, 1, 1, 1), x.flip(-2), x)
    x = torch.where((r[:, 2] < 0.5).view(b, 1, 1, 1), x.transpose(-1, -2), x)
    gain = 0.85 + 0.3 * torch.rand(b, 1, 1, 1, generator=generator)
    shift = 0.2 * (r[:, 3].view(b, 1, 1, 1) - 0.5)
    return x * gain + shift


def training_batch(
    pixels: torch.Tensor, config: DiffMICConfig, generator: torch.Generator | None = None, pool: int = 1
) -> torch.Tensor:
    """uint8 pixels (B, S, S, 3) → the normalised float batch (B, 3, S / pool, S / pool), augmented as
    ``augment(normalise(pixels))`` when a generator is given (the same draws, equal to float rounding).

    The fast path of training: the batch stays channels-last (the pixels' own layout), is average-pooled
    before anything else (``pool`` = local_scale gives the global view at a quarter of the cost: pooling
    commutes with the flips and the per-channel affine maps), flips only the images drawn for a flip,
    and normalisation and brightness/contrast jitter are one multiply-add."""
    x = pixels.permute(0, 3, 1, 2).float()  # a channels-last view of the (B, S, S, 3) pixels
    if pool > 1:
        x = torch.nn.functional.avg_pool2d(x, pool)
    b = x.shape[0]
    mean = torch.tensor(config.mean).view(1, 3, 1, 1)
    std = torch.tensor(config.std).view(1, 3, 1, 1)
    gain, shift = torch.ones(b, 1, 1, 1), torch.zeros(b, 1, 1, 1)
    if generator is not None:
        r = torch.rand(b, 4, generator=generator)
        for column, flip in (
            (0, lambda v: v.flip(-1)),
            (1, lambda v: v.flip(-2)),
            (2, lambda v: v.transpose(-1, -2)),
        ):
            chosen = r[:, column] < 0.5
            if chosen.any():
                x[chosen] = flip(x[chosen])
        gain = 0.85 + 0.3 * torch.rand(b, 1, 1, 1, generator=generator)
        shift = 0.2 * (r[:, 3].view(b, 1, 1, 1) - 0.5)
    # ((p / 255 - mean) / std) * gain + shift, as one multiply-add
    scale = gain / (255.0 * std)
    offset = shift - mean * gain / std
    return torch.addcmul(offset, x, scale)
