"""Training speed of every stage: float32 against bfloat16 autocast + channels-last, in one run.

The bundled fundus architecture (``weights/fundus/config.json``: resnet10t global network at 128 px,
resnet10t local network on 12 ROI patches of 64 px, 256 px input), random weights (speed does not depend
on them), generated training images read from the memory-mapped shards (``--n``). Through the trainer's own
``_step``, after a warm-up step, median of ``--batches`` batches of ``--batch-size``:

- ``global_images_per_s``, ``local_images_per_s`` (and ``encoder_images_per_s`` with ``--encoder NAME``: the
  denoiser's own encoder on the full 256 px input), each three ways: ``before`` (float32, the batch made as
  before this round: normalised and augmented at the full 256 px, ``augment(normalise(x))``, pooled after),
  ``float32`` (the fast batch, ``transforms.training_batch``) and ``fast`` (that batch under
  ``precision="auto"``: bfloat16 autocast + channels-last where the hardware has it); ``speedup_*`` is
  fast / before;
- ``cache_images_per_s``: building the conditioning cache (one view; float32, as inference);
- ``cached_epoch_s``: one epoch of the cached diffusion stage (a small MLP on cached rows);
- ``unit_s``: one resnet18 forward at 224 px, batch 1, in the same run (``benchmarks/units.py``).

    python benchmarks/train_speed.py [--json] [--n 3000] [--batches 6] [--encoder resnet10t] [--tiny]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from units import resnet18_unit  # noqa: E402

from diffmic.conditioning import build_cache  # noqa: E402
from diffmic.config import DiffMICConfig  # noqa: E402
from diffmic.data.datasets import Splits, batch_of, synthetic_splits  # noqa: E402
from diffmic.precision import training_dtype  # noqa: E402
from diffmic.train import TrainConfig, Trainer  # noqa: E402
from diffmic.transforms import augment, normalise  # noqa: E402


class BeforeTrainer(Trainer):
    """The trainer with the batch made as before this round: normalised and augmented at full size."""

    def _images(self, idx: np.ndarray, pool: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
        pixels, labels = batch_of(self.splits.train, idx)
        x = augment(normalise(pixels.numpy(), self.cfg), self.generator)
        return (torch.nn.functional.avg_pool2d(x, pool) if pool > 1 else x), labels


def images_per_s(trainer: Trainer, stage: str, batches: int, batch_size: int) -> float:
    """Training images per second of ``stage`` through ``Trainer._step`` (median batch, after a warm-up)."""
    trainer._new_stage(stage)
    plan = [
        np.arange(i * batch_size, (i + 1) * batch_size) % len(trainer.splits.train)
        for i in range(batches + 1)
    ]
    trainer._step(stage, plan[0])
    times = []
    for idx in plan[1:]:
        start = time.perf_counter()
        trainer._step(stage, idx)
        times.append(time.perf_counter() - start)
    return batch_size / float(np.median(times))


def measure(splits: Splits, cfg: DiffMICConfig, args: argparse.Namespace) -> dict:
    """The figures of the module docstring."""
    out: dict = {"unit_s": round(resnet18_unit(), 4), "batch_size": args.batch_size}
    stages = ["global", "local"] + (["encoder"] if cfg.encoder_backbone else [])
    ways = (("before", "float32", BeforeTrainer), ("float32", "float32", Trainer), ("fast", "auto", Trainer))
    for key, precision, kind in ways:
        tc = TrainConfig(out_dir="/tmp/diffmic-train-speed", batch_size=args.batch_size, precision=precision)
        torch.manual_seed(0)
        trainer = kind(cfg, tc, splits)
        out[f"{key}_dtype"] = str(training_dtype(precision, trainer.device)).removeprefix("torch.")
        for stage in stages:
            out[f"{stage}_images_per_s_{key}"] = round(
                images_per_s(trainer, stage, args.batches, args.batch_size), 1
            )
    for stage in stages:
        out[f"{stage}_images_per_s"] = out[f"{stage}_images_per_s_fast"]
        out[f"speedup_{stage}"] = round(
            out[f"{stage}_images_per_s_fast"] / out[f"{stage}_images_per_s_before"], 2
        )

    n_cache = min(args.cache_images, len(splits.train))
    start = time.perf_counter()
    cache = build_cache(trainer.model, splits.train.subset(np.arange(n_cache)), 1)
    out["cache_images_per_s"] = round(n_cache / (time.perf_counter() - start), 1)
    reps = -(-len(splits.train) // n_cache)  # a cache of the real one's shape
    cache.features = np.tile(cache.features, (reps, 1, 1))[: len(splits.train)]
    cache.priors = np.tile(cache.priors, (reps, 1, 1, 1))[: len(splits.train)]
    cache.labels = splits.train.labels
    trainer.cache = cache
    trainer._new_stage("diffusion")
    plan = trainer._batches("diffusion")
    trainer._step("diffusion", plan[0])
    start = time.perf_counter()
    for idx in plan:
        trainer._step("diffusion", idx)
    out["cached_epoch_s"] = round(time.perf_counter() - start, 3)
    out["train_images"] = len(splits.train)
    for key in [k for k in out if k.endswith("_images_per_s")]:
        out[key.replace("_images_per_s", "_images_per_unit")] = round(out[key] * out["unit_s"], 3)
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--json", action="store_true")
    p.add_argument("--n", type=int, default=3000, help="generated images (train + validation)")
    p.add_argument("--batches", type=int, default=6, help="batches timed per stage")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--cache-images", type=int, default=256, help="images the cache build is timed on")
    p.add_argument("--encoder", help="also time the denoiser's own encoder (a timm name) on the full input")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--tiny", action="store_true", help="a tiny network and data set (for tests)")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    cfg = DiffMICConfig.load(ROOT / "weights" / "fundus" / "config.json")
    if args.tiny:
        cfg = replace(
            cfg,
            image_size=64,
            global_backbone="test_efficientnet",
            local_backbone="test_efficientnet",
            crop_size=16,
            num_crops=3,
            feature_dim=32,
            timesteps=100,
        )
        args.n, args.batches, args.batch_size, args.cache_images = min(args.n, 80), 2, 8, 16
    if args.encoder:
        cfg = replace(cfg, encoder_backbone=args.encoder, encoder_view="full")
    splits = synthetic_splits("fundus", args.n, 0, cfg.input_size, seed=0)
    out = measure(splits, cfg, args)
    if args.json:
        print(json.dumps(out))
        return
    unit = out["unit_s"]
    print(f"training speed, fundus architecture, batch {args.batch_size}, {args.threads} threads")
    print(f"unit: one resnet18-224 forward = {unit * 1000:.1f} ms")
    print(
        f"images/s: before (float32, full-size batch) | float32, fast batch | {out['fast_dtype']}, fast batch"
    )
    for stage in ("global", "local", "encoder"):
        if f"{stage}_images_per_s" in out:
            before, plain, fast = (out[f"{stage}_images_per_s_{k}"] for k in ("before", "float32", "fast"))
            print(
                f"{stage:8s} {before:8.1f} {plain:8.1f} {fast:8.1f}   {out[f'speedup_{stage}']:.2f}x faster"
            )
    print(f"conditioning cache: {out['cache_images_per_s']:.1f} images/s (one view)")
    print(f"cached diffusion epoch over {out['train_images']} images: {out['cached_epoch_s']:.2f} s")


if __name__ == "__main__":
    main()
