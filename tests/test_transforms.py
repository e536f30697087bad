"""The training batch's fast path equals the reference transform: normalise, then augment (then pool)."""

import numpy as np
import torch
import torch.nn.functional as F

from diffmic.config import DiffMICConfig
from diffmic.transforms import augment, normalise, training_batch


def test_training_batch_is_augment_of_normalise_with_the_same_draws():
    cfg = DiffMICConfig(mean=(0.3, 0.5, 0.2), std=(0.2, 0.3, 0.25))
    pixels = torch.from_numpy(np.random.default_rng(0).integers(0, 256, (16, 32, 32, 3), dtype=np.uint8))
    torch.testing.assert_close(training_batch(pixels, cfg), normalise(pixels.numpy(), cfg))
    for seed in range(4):
        reference = augment(normalise(pixels.numpy(), cfg), torch.Generator().manual_seed(seed))
        fast = training_batch(pixels, cfg, torch.Generator().manual_seed(seed))
        torch.testing.assert_close(fast, reference, rtol=0, atol=1e-5)
        pooled = training_batch(pixels, cfg, torch.Generator().manual_seed(seed), pool=2)
        torch.testing.assert_close(pooled, F.avg_pool2d(reference, 2), rtol=0, atol=1e-5)
        assert fast.is_contiguous(memory_format=torch.channels_last)
    generator = torch.Generator().manual_seed(0)
    first, second = training_batch(pixels, cfg, generator), training_batch(pixels, cfg, generator)
    assert not torch.equal(first, second)  # a generator's next draws: other flips and jitter
