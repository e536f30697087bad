"""Draw README's "How DiffMIC works" figure from a real run of a bundled model.

image → DCG saliency and ROI patches → global / local / fused priors → label diffusion → answer

    python docs/make_pipeline_figure.py [--model weights/fundus] [--image assets/fundus/3_severe_0.png]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from diffmic.drawing import draw_rois, overlay  # noqa: E402
from diffmic.options import SamplingOptions  # noqa: E402
from diffmic.pipeline import DiffMICPipeline  # noqa: E402


def make_figure(pipe: DiffMICPipeline, image: Path, out: Path, seed: int = 0) -> Path:
    """Run the model on one image and save the six-panel pipeline figure."""
    result = pipe(image, SamplingOptions(samples=8, seed=seed))
    g = pipe.prepare(image).guidance
    names = pipe.config.class_names
    ts = result.trajectory.timesteps
    probs = result.trajectory.probs  # (steps, N, C)
    fig = plt.figure(figsize=(15, 4.2), dpi=150)
    grid = fig.add_gridspec(2, 6, height_ratios=[1, 1], width_ratios=[1, 1, 0.5, 1.1, 1.6, 1.1])
    rois = result.rois

    ax = fig.add_subplot(grid[:, 0])
    ax.imshow(result.pixels)
    ax.set_title("1. image", fontsize=10)
    ax = fig.add_subplot(grid[:, 1])
    ax.imshow(draw_rois(overlay(result.pixels, result.saliency), rois.boxes, side=512))
    ax.set_title("2. CAM of the answer + ROIs", fontsize=10)
    for k in range(2):
        ax = fig.add_subplot(grid[k, 2])
        ax.imshow(rois.crops[k])
        ax.set_title(f"ROI {k + 1}: attention {rois.attention[k]:.2f}", fontsize=8)
    ax = fig.add_subplot(grid[:, 3])
    x = np.arange(len(names))
    for j, (label, p) in enumerate(
        [("global", g.global_prior), ("local", g.local_prior), ("fused", g.fused_prior)]
    ):
        ax.barh(x + (j - 1) * 0.27, p[0].numpy(), height=0.27, label=label)
    ax.set_yticks(x, names, fontsize=8)
    ax.invert_yaxis()
    ax.set_xlim(0, 1)
    ax.legend(fontsize=7, loc="lower right")
    ax.set_title("3. DCG priors", fontsize=10)
    ax = fig.add_subplot(grid[:, 4])
    for c, name in enumerate(names):
        line = ax.plot(ts, probs[:, :, c].mean(1), lw=1.5, label=name)[0]
        ax.fill_between(ts, probs[:, :, c].min(1), probs[:, :, c].max(1), color=line.get_color(), alpha=0.15)
    ax.invert_xaxis()
    ax.set_xlabel("timestep t (T → 0)")
    ax.set_ylabel("p(class)")
    ax.set_title("4. label diffusion: y_T ~ N(prior, I) → y_0", fontsize=10)
    ax.legend(fontsize=7)
    ax = fig.add_subplot(grid[:, 5])
    final = probs[-1].mean(0)
    ax.barh(x, final, color="tab:green")
    ax.set_yticks(x, names, fontsize=8)
    ax.invert_yaxis()
    ax.set_xlim(0, 1)
    ax.set_title(f"5. answer: {names[int(final.argmax())]}", fontsize=10)
    for a in fig.axes[:4]:
        a.set_xticks([]) if a.images else None
        if a.images:
            a.set_yticks([])
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out)
    plt.close(fig)
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default=str(ROOT / "weights" / "fundus"))
    p.add_argument("--image", type=Path, default=ROOT / "assets" / "fundus" / "3_severe_0.png")
    p.add_argument("--out", type=Path, default=ROOT / "docs" / "pipeline.png")
    args = p.parse_args()
    print(make_figure(DiffMICPipeline.from_pretrained(args.model), args.image, args.out))


if __name__ == "__main__":
    main()
