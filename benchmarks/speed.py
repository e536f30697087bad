"""Inference speed of DiffMIC on this machine, in units measured in the same run.

One unit = one resnet18 forward pass at 224 px, batch 1 (timm, random weights), with the same threads:
machines of one kind differ by 2x in seconds, much less in units. The model is the bundled models'
architecture (``DiffMICConfig()`` defaults; random weights: speed does not depend on them). Per image:

- ``ddpm_1000_s``: the full T = 1000 DDPM chain, one chain; DCG once, then the folded head (``lean``);
- ``head_only_1000_s``: that chain's 1000 head steps alone; ``plain_head_1000_s`` the same steps through
  the unfolded head and the generic loop (``chain.denoise_steps``), for comparison;
- ``ddim_50_s``: DDIM with 50 steps;
- ``app_default_s``: the app's default run: DDPM, T = 1000, 8 chains;
- ``reference_1000_s``: the authors' approach, the conditioning networks re-run at every step (measured
  on ``--reference-steps`` steps and scaled to 1000, as it is linear in the steps); ``ratio`` = it / ours;
- ``throughput_ips``: images per second for a batch of 32 through the T = 1000 chain, and
  ``batch_speedup`` = that / the single-image rate;
- ``peak_mb``: peak resident memory of the process.

    python benchmarks/speed.py [--json] [--threads 2]
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.units import resnet18_unit, timed  # noqa: E402
from diffmic.chain import denoise_steps, last_state  # noqa: E402
from diffmic.config import DiffMICConfig  # noqa: E402
from diffmic.diffusion import make_sampler  # noqa: E402
from diffmic.model import DiffMIC  # noqa: E402
from diffmic.options import APP_DEFAULT, SamplingOptions  # noqa: E402
from diffmic.pipeline import DiffMICPipeline  # noqa: E402


def reference_chain(model: DiffMIC, x: torch.Tensor, steps: int) -> None:
    """The authors' loop: every step re-runs the conditioning networks before the denoiser head."""
    with torch.inference_mode():
        prior = model.condition(x).prior()
        sampler = make_sampler("ddpm", model.diffusion)
        y = sampler.init_sample(prior)
        for t in sampler.timesteps[:steps]:
            gate = model.denoiser.gate(model.condition(x).features)  # recomputed at each step
            eps = model.denoiser(gate, y, torch.full((x.shape[0],), t), prior)
            y = sampler.step(eps, t, y, prior).prev_sample


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--reference-steps", type=int, default=20)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    cfg = DiffMICConfig(class_names=[f"grade {i}" for i in range(5)])
    model = DiffMIC(cfg).eval()
    pipe = DiffMICPipeline(model)
    size = cfg.input_size
    x1, x32 = torch.randn(1, 3, size, size), torch.randn(32, 3, size, size)
    one = SamplingOptions(samples=1)

    unit = resnet18_unit(args.repeats)
    ddpm = timed(lambda: pipe.classify_batch(x1, one), args.repeats)
    ddim = timed(lambda: pipe.classify_batch(x1, one.with_(sampler="ddim", steps=50)), args.repeats)
    app = timed(lambda: pipe.classify_batch(x1, APP_DEFAULT), args.repeats)
    with torch.inference_mode():
        cond = model.condition(x1)
        gate = model.denoiser.gate(cond.features)
    head = timed(lambda: last_state(pipe.denoise(cond.features, cond.prior(), one)), args.repeats)

    def plain() -> None:
        def eps_fn(y, t, p):
            return model.denoiser(gate, y, t, p)

        last_state(denoise_steps(eps_fn, cond.prior(), make_sampler("ddpm", model.diffusion)))

    plain_head = timed(plain, 1)
    reference = (
        timed(lambda: reference_chain(model, x1, args.reference_steps), 1) * 1000 / args.reference_steps
    )
    batch = timed(lambda: pipe.classify_batch(x32, one), 1)
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    result = {
        "unit_s": round(unit, 5),
        "ddpm_1000_s": round(ddpm, 4),
        "ddpm_1000_units": round(ddpm / unit, 2),
        "head_only_1000_s": round(head, 4),
        "head_only_1000_units": round(head / unit, 2),
        "plain_head_1000_s": round(plain_head, 4),
        "ddim_50_s": round(ddim, 4),
        "app_default_s": round(app, 4),
        "app_default_units": round(app / unit, 2),
        "reference_1000_s": round(reference, 3),
        "ratio": round(reference / ddpm, 1),
        "throughput_ips": round(32 / batch, 2),
        "batch_speedup": round(32 / batch * ddpm, 2),
        "peak_mb": round(peak_mb, 1),
        "config": {"input_size": size, "image_size": cfg.image_size, "threads": args.threads},
    }
    if args.json:
        print(json.dumps(result))
        return
    u = unit
    print(
        f"DiffMIC speed: {size}px input, bundled architecture, {args.threads} threads, batch 1 unless noted"
    )
    print(f"  unit: resnet18 forward at 224 px      {u * 1000:8.1f} ms")
    print(f"  T=1000 DDPM, one chain                {ddpm:8.3f} s  = {ddpm / u:6.1f} units  (target <= 6)")
    print(f"    of which the 1000-step head         {head:8.3f} s  = {head / u:6.1f} units  (target <= 3)")
    print(f"    the same steps, unfolded head       {plain_head:8.3f} s  = {plain_head / u:6.1f} units")
    print(f"  DDIM, 50 steps                        {ddim:8.3f} s  = {ddim / u:6.1f} units")
    print(f"  app default: DDPM 1000 x 8 chains     {app:8.3f} s  = {app / u:6.1f} units")
    print(f"  reference: networks every step        {reference:8.3f} s  (from {args.reference_steps} steps)")
    print(f"  ratio                                 {reference / ddpm:8.1f} x        (target >= 50)")
    print(
        f"  throughput, batch 32, T=1000          {32 / batch:8.2f} images/s = {32 * ddpm / batch:.1f} x one"
    )
    print(f"  peak memory                           {peak_mb:8.1f} MB")


if __name__ == "__main__":
    main()
