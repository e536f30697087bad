"""Do the explanations point at the lesions? A pointing game against the generators' lesion masks.

On held-out generated test images that have lesions (mask not empty), a map scores a hit when:
- ``saliency``: the maximum of the DCG saliency map, upsampled to the image, lies within
  ``tolerance`` pixels of a lesion pixel (tolerance = 1/16 of the image side, as the classic pointing
  game allows 15 px at 224 px);
- ``patch``: the ROI crop with the highest gated-attention weight contains a lesion pixel;
- ``gradcam``: the maximum of the Grad-CAM map (denoiser network) lies within ``tolerance`` pixels of
  a lesion pixel.

    python benchmarks/faithfulness.py [--tasks fundus derm placenta] [--n 300] [--json]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from scipy.ndimage import binary_dilation

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from diffmic.data.datasets import synthetic_splits  # noqa: E402
from diffmic.explain import grad_cam  # noqa: E402
from diffmic.model import DiffMIC  # noqa: E402
from diffmic.transforms import normalise  # noqa: E402


def max_point(heat: torch.Tensor | np.ndarray, size: int) -> tuple[int, int]:
    """(row, col) of the maximum of a map upsampled bilinearly to size x size."""
    h = torch.as_tensor(np.asarray(heat), dtype=torch.float32)[None, None]
    up = F.interpolate(h, size=(size, size), mode="bilinear", align_corners=False)[0, 0]
    idx = int(up.argmax())
    return idx // size, idx % size


def score_task(task: str, weights: Path, n: int, seed: int = 0) -> dict:
    """Pointing-game hit rates of the three explanations on one task."""
    model = DiffMIC.from_pretrained(weights / task)
    size = model.config.image_size
    test = synthetic_splits(task, 0, n, size, seed=seed).test
    tol = max(1, size // 16)
    hits = {"saliency": [], "patch": [], "gradcam": []}
    struct = np.ones((2 * tol + 1, 2 * tol + 1), bool)
    for i in np.flatnonzero(test.masks.reshape(len(test), -1).any(1)):
        mask = test.masks[i]
        near = binary_dilation(mask, structure=struct)
        x = normalise(test.images[i : i + 1], model.config)
        with torch.no_grad():
            g = model.dcg(x)
        r, c = max_point(g.saliency[0], size)
        hits["saliency"].append(bool(near[r, c]))
        x0, y0, x1, y1 = g.boxes[0, int(g.attention[0].argmax())].tolist()
        hits["patch"].append(bool(mask[y0:y1, x0:x1].any()))
        cls = int(g.fused_prior[0].argmax())
        r, c = max_point(grad_cam(model, x, cls, network="denoiser"), size)
        hits["gradcam"].append(bool(near[r, c]))
    out = {k: round(float(np.mean(v)), 3) for k, v in hits.items()}
    out["_n"] = len(hits["patch"])
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--tasks", nargs="+", default=["fundus", "derm", "placenta"])
    p.add_argument("--n", type=int, default=300, help="test images drawn (those with lesions are scored)")
    p.add_argument("--json", action="store_true")
    p.add_argument("--weights", type=Path, default=ROOT / "weights", help="folder of <task>/ model folders")
    args = p.parse_args()
    torch.set_num_threads(2)
    res = {
        t: score_task(t, args.weights, args.n)
        for t in args.tasks
        if (args.weights / t / "model.safetensors").is_file()
    }
    if args.json:
        print(json.dumps({t: {k: v for k, v in r.items() if k != "_n"} for t, r in res.items()}))
        return
    print("| task | images with lesions | saliency | top patch | Grad-CAM |\n|---|---|---|---|---|")
    for t, r in res.items():
        print(f"| {t} | {r['_n']} | {r['saliency']:.3f} | {r['patch']:.3f} | {r['gradcam']:.3f} |")


if __name__ == "__main__":
    main()
