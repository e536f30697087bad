"""Inference speed of DiffMIC on this machine, measured side by side in one run.

At 224 px with resnet18 backbones (random weights; speed does not depend on them), per image:
- ``ddpm_1000_s``: the full T=1000 DDPM chain, image encoder run once (our design);
- ``ddim_50_s``: DDIM with 50 steps;
- ``reference_1000_s``: the authors' approach, which re-runs the image encoder at every step
  (measured on ``--reference-steps`` steps and scaled to 1000, as it is linear in the steps);
- ``ratio``: reference / ours;
- ``throughput_ips``: images per second for a batch of 32 through the T=1000 chain (batched DCG and
  encoder passes, then the per-step head over all 32 rows);
- ``peak_mb``: peak resident memory of the process.

    python benchmarks/speed.py [--json] [--threads 2]
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from diffmic.config import DiffMICConfig  # noqa: E402
from diffmic.diffusion import make_sampler  # noqa: E402
from diffmic.model import DiffMIC  # noqa: E402
from diffmic.pipeline import denoise  # noqa: E402


def timed(fn, repeats: int) -> float:
    """Median wall time of ``fn()`` over ``repeats`` runs (after one warm-up)."""
    fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return float(np.median(times))


def reference_chain(model: DiffMIC, x: torch.Tensor, steps: int) -> None:
    """The authors' loop: every step re-encodes the image before the denoiser head."""
    with torch.inference_mode():
        prior = model.dcg(x).fused_prior
        sampler = make_sampler("ddpm", model.diffusion)
        y = sampler.init_sample(prior)
        for t in sampler.timesteps[:steps]:
            features = model.denoiser.encode(x)  # recomputed at each step
            eps = model.denoiser(features, y, torch.full((x.shape[0],), t), prior)
            y = sampler.step(eps, t, y, prior).prev_sample


def our_chain(model: DiffMIC, x: torch.Tensor, sampler: str, steps: int | None) -> None:
    """Encode once, then run the whole chain of the per-step head."""
    model.classify_batch(x, sampler=sampler, steps=steps, samples=1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--image-size", type=int, default=224)
    parser.add_argument("--backbone", default="resnet18")
    parser.add_argument("--reference-steps", type=int, default=50)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    cfg = DiffMICConfig(
        class_names=[f"grade {i}" for i in range(5)],
        image_size=args.image_size,
        global_backbone=args.backbone,
        local_backbone=args.backbone,
        encoder_backbone=args.backbone,
        cam_size=7,
        timesteps=1000,
    )
    model = DiffMIC(cfg).eval()
    x1 = torch.randn(1, 3, args.image_size, args.image_size)
    x32 = torch.randn(32, 3, args.image_size, args.image_size)

    ddpm = timed(lambda: our_chain(model, x1, "ddpm", None), args.repeats)
    ddim = timed(lambda: our_chain(model, x1, "ddim", 50), args.repeats)
    ref_part = timed(lambda: reference_chain(model, x1, args.reference_steps), 1)
    reference = ref_part * 1000 / args.reference_steps
    batch = timed(lambda: our_chain(model, x32, "ddpm", None), 1)
    head_only = timed(
        lambda: denoise(
            lambda y, t, p: model.denoiser(torch.zeros(1, cfg.feature_dim), y, t, p),
            torch.full((1, 5), 0.2),
            make_sampler("ddpm", model.diffusion),
        ),
        1,
    )
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    result = {
        "ddpm_1000_s": round(ddpm, 4),
        "ddim_50_s": round(ddim, 4),
        "reference_1000_s": round(reference, 3),
        "ratio": round(reference / ddpm, 1),
        "throughput_ips": round(32 / batch, 2),
        "peak_mb": round(peak_mb, 1),
        "head_only_1000_s": round(head_only, 4),
        "config": {"image_size": args.image_size, "backbone": args.backbone, "threads": args.threads},
    }
    if args.json:
        print(json.dumps(result))
        return
    print(
        f"DiffMIC speed, {args.image_size}px, {args.backbone} x3, {args.threads} threads, "
        "batch 1 unless noted"
    )
    print(f"  T=1000 DDPM, encoder once      {ddpm:8.3f} s/image   (target <= 0.5)")
    print(f"    of which the 1000-step head  {head_only:8.3f} s")
    print(f"  DDIM, 50 steps                 {ddim:8.3f} s/image")
    print(f"  reference: encoder every step  {reference:8.3f} s/image   (from {args.reference_steps} steps)")
    print(f"  ratio                          {reference / ddpm:8.1f} x        (target >= 50)")
    print(f"  throughput, batch 32, T=1000   {32 / batch:8.2f} images/s (target >= 10)")
    print(f"  peak memory                    {peak_mb:8.1f} MB")


if __name__ == "__main__":
    main()
