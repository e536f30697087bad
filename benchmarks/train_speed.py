"""Stage-2 training speed: a diffusion epoch end to end vs on cached conditioning, in one run.

Fundus, the bundled architecture (128 px global view, 256 px input), random weights (speed does not
depend on them), ``--n`` generated images (85 % of them train). Through the trainer's own step:
- ``end_to_end_epoch_s``: one diffusion epoch that runs the DCG on every augmented batch (measured on
  ``--batches`` batches, scaled to the epoch);
- ``cached_epoch_s``: one diffusion epoch on the cached conditioning (measured whole);
- ``cache_build_s``: building the cache (all views of every training image; measured on
  ``--cache-images`` images, scaled);
- ``speedup`` = end_to_end_epoch_s / cached_epoch_s, and ``cached_300_epochs_min`` with the build.

    python benchmarks/train_speed.py [--json] [--n 3000] [--tiny]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from diffmic.conditioning import build_cache  # noqa: E402
from diffmic.config import DiffMICConfig  # noqa: E402
from diffmic.data.datasets import ArrayDataset, Splits, synthetic_splits  # noqa: E402
from diffmic.train import TrainConfig, Trainer  # noqa: E402


def seconds_of(fn) -> float:
    """Wall time of ``fn()``."""
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def subset(data: ArrayDataset, n: int) -> ArrayDataset:
    """The first n images."""
    return ArrayDataset(data.images[:n], data.labels[:n])


def measure(splits: Splits, cfg: DiffMICConfig, tc: TrainConfig, batches: int, cache_images: int) -> dict:
    """The figures of the module docstring."""
    e2e = Trainer(cfg, TrainConfig(**{**tc.__dict__, "stage2": "end-to-end"}), splits)
    e2e._new_stage("diffusion")
    plan = e2e._batches("diffusion")
    e2e._step("diffusion", plan[0])  # warm-up
    per_batch = seconds_of(lambda: [e2e._step("diffusion", idx) for idx in plan[1 : 1 + batches]]) / batches
    end_to_end = per_batch * len(plan)

    cached = Trainer(cfg, tc, splits)
    cached._new_stage("diffusion")
    n_cache = min(cache_images, len(splits.train))
    build = seconds_of(lambda: build_cache(cached.model, subset(splits.train, n_cache), tc.cache_views))
    build *= len(splits.train) / n_cache
    cached.cache = build_cache(cached.model, subset(splits.train, 8), tc.cache_views)
    reps = -(-len(splits.train) // 8)
    cached.cache.features = cached.cache.features.repeat(reps, 0)[
        : len(splits.train)
    ]  # shape of the real cache
    cached.cache.priors = cached.cache.priors.repeat(reps, 0)[: len(splits.train)]
    cached.cache.labels = splits.train.labels
    plan = cached._batches("diffusion")
    cached._step("diffusion", plan[0])
    epoch = seconds_of(lambda: [cached._step("diffusion", idx) for idx in plan])
    return {
        "end_to_end_epoch_s": round(end_to_end, 2),
        "cached_epoch_s": round(epoch, 3),
        "cache_build_s": round(build, 1),
        "speedup": round(end_to_end / epoch, 1),
        "cached_300_epochs_min": round((build + 300 * epoch) / 60, 2),
        "train_images": len(splits.train),
        "cache_views": tc.cache_views,
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--json", action="store_true")
    p.add_argument("--n", type=int, default=3000, help="generated images (train + validation)")
    p.add_argument("--batches", type=int, default=4, help="end-to-end batches timed")
    p.add_argument("--cache-images", type=int, default=128, help="images the cache build is timed on")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--tiny", action="store_true", help="a tiny network and data set (for tests)")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    if args.tiny:
        cfg = DiffMICConfig(
            class_names=["a", "b", "c", "d", "e"],
            image_size=64,
            global_backbone="test_efficientnet",
            local_backbone="test_efficientnet",
            crop_size=16,
            num_crops=3,
            feature_dim=32,
            timesteps=100,
        )
        n = min(args.n, 80)
    else:
        cfg, n = (
            DiffMICConfig(class_names=["No DR", "Mild", "Moderate", "Severe", "Proliferative DR"]),
            args.n,
        )
    splits = synthetic_splits("fundus", n, 0, cfg.input_size, seed=0)
    out = measure(
        splits, cfg, TrainConfig(out_dir="/tmp/diffmic-train-speed"), args.batches, args.cache_images
    )
    if args.json:
        print(json.dumps(out))
        return
    print(f"stage 2 on {out['train_images']} fundus training images, {args.threads} threads")
    print(f"  end to end, one epoch    {out['end_to_end_epoch_s']:9.2f} s")
    print(
        f"  cached, one epoch        {out['cached_epoch_s']:9.3f} s {out['speedup']:.1f}x faster (target 20x)"
    )
    print(
        f"  cache build              {out['cache_build_s']:9.1f} s   ({out['cache_views']} views per image)"
    )
    print(f"  300 cached epochs + build {out['cached_300_epochs_min']:8.2f} min (target <= 15)")


if __name__ == "__main__":
    main()
