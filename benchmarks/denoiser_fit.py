"""How well does the denoiser predict the noise where the class is decided? R² on held-out images.

For held-out generated test images: y0 = one-hot of the true class, y_t = q_sample(y0, fused prior, t, eps)
with fixed seeded noise, R²(t) = 1 - mean (eps - eps_theta)² / var(eps). At small t the label is nearly
clean, and at t ≈ 10 … 100 the chain commits to a class: a denoiser that has learnt its job scores high
there.

    python benchmarks/denoiser_fit.py --models weights/fundus [runs/other] [--n 300] [--json]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from diffmic.data.datasets import batch_of, synthetic_splits  # noqa: E402
from diffmic.model import DiffMIC  # noqa: E402
from diffmic.transforms import normalise  # noqa: E402

TIMESTEPS = (10, 50, 100, 250, 500)


@torch.no_grad()
def noise_r2(model: DiffMIC, task: str, n: int, timesteps=TIMESTEPS, seed: int = 0) -> dict[int, float]:
    """R² of the predicted noise at each timestep, over n held-out images of ``task``."""
    cfg = model.config
    test = synthetic_splits(task, 0, n, cfg.input_size, seed=0).test
    gen = torch.Generator().manual_seed(seed)
    errors: dict[int, list[torch.Tensor]] = {t: [] for t in timesteps}
    noises: dict[int, list[torch.Tensor]] = {t: [] for t in timesteps}
    for start in range(0, len(test), 64):
        pixels, labels = batch_of(test, torch.arange(start, min(start + 64, len(test))).numpy())
        cond = model.condition(normalise(pixels.numpy(), cfg))
        gate, prior = model.denoiser.gate(cond.features), cond.prior()
        y0 = torch.nn.functional.one_hot(labels, cfg.num_classes).float()
        for t in timesteps:
            eps = torch.randn(y0.shape, generator=gen)
            tt = torch.full((len(y0),), t)
            pred = model.denoiser(gate, model.diffusion.q_sample(y0, prior, tt, eps), tt, prior)
            errors[t].append((eps - pred) ** 2)
            noises[t].append(eps)
    return {
        t: round(1 - torch.cat(errors[t]).mean().item() / torch.cat(noises[t]).var().item(), 4)
        for t in timesteps
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--models", nargs="+", type=Path, default=[ROOT / "weights" / "fundus"])
    p.add_argument("--n", type=int, default=300)
    p.add_argument("--json", action="store_true")
    args = p.parse_args()
    torch.set_num_threads(2)
    out = {}
    for folder in args.models:
        model = DiffMIC.from_pretrained(folder)
        out[str(folder)] = noise_r2(model, model.config.task, args.n)
    if args.json:
        print(json.dumps(out))
        return
    print("| model | " + " | ".join(f"R² at t = {t}" for t in TIMESTEPS) + " |")
    print("|---|" + "---|" * len(TIMESTEPS))
    for name, r2 in out.items():
        print(f"| {name} | " + " | ".join(f"{r2[t]:.3f}" for t in TIMESTEPS) + " |")


if __name__ == "__main__":
    main()
