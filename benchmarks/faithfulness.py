"""Do the explanations point at the lesions? A pointing game against the generators' lesion masks.

On held-out generated test images that have lesions (mask not empty), a map scores a hit when:
- ``saliency``: the maximum of the global saliency the app shows (the CAM channel of the predicted
  class), upsampled to the image, lies within ``tolerance`` pixels of a lesion pixel (tolerance =
  1/16 of the image side; the classic pointing game allows 15 px at 224 px);
- ``patch``: the ROI crop with the highest gated-attention weight contains a lesion pixel;
- ``gradcam``: the same for the maximum of the app's Grad-CAM map: Grad-CAM++ on the global network's
  stride-16 stage.
Also reported: ``saliency_all_classes`` (the summed map the ROIs are chosen from),
``gradcam_last_stage`` (classic Grad-CAM on the last, stride-32 stage), ``gradcam_denoiser``
(Grad-CAM++ through the denoiser's encoder) and ``any_patch`` (a lesion in any of the K crops).

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

KEYS = (
    "saliency",
    "patch",
    "gradcam",
    "saliency_all_classes",
    "gradcam_last_stage",
    "gradcam_denoiser",
    "any_patch",
)


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
    hits: dict[str, list[bool]] = {k: [] for k in KEYS}
    struct = np.ones((2 * tol + 1, 2 * tol + 1), bool)
    for i in np.flatnonzero(test.masks.reshape(len(test), -1).any(1)):
        mask = test.masks[i]
        near = binary_dilation(mask, structure=struct)
        x = normalise(test.images[i : i + 1], model.config)
        with torch.no_grad():
            g = model.dcg(x)
        cls = int(g.fused_prior[0].argmax())
        maps = {
            "saliency": g.class_saliency()[0],
            "saliency_all_classes": g.saliency[0],
            "gradcam": grad_cam(model, x, cls),
            "gradcam_last_stage": grad_cam(model, x, cls, method="gradcam", stage=-1),
            "gradcam_denoiser": grad_cam(model, x, cls, network="denoiser"),
        }
        for name, heat in maps.items():
            r, c = max_point(heat, size)
            hits[name].append(bool(near[r, c]))
        x0, y0, x1, y1 = g.boxes[0, int(g.attention[0].argmax())].tolist()
        hits["patch"].append(bool(mask[y0:y1, x0:x1].any()))
        hits["any_patch"].append(any(bool(mask[b[1] : b[3], b[0] : b[2]].any()) for b in g.boxes[0].tolist()))
    out = {k: round(float(np.mean(v)), 3) for k, v in hits.items()}
    out["_n"] = len(hits["patch"])
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--tasks", nargs="+", default=["fundus", "derm", "placenta"])
    p.add_argument("--n", type=int, default=300, help="test images drawn (those with lesions are scored)")
    p.add_argument("--json", action="store_true")
    p.add_argument("--out", type=Path, help="also write the JSON here")
    p.add_argument("--weights", type=Path, default=ROOT / "weights", help="folder of <task>/ model folders")
    args = p.parse_args()
    torch.set_num_threads(2)
    res = {
        t: score_task(t, args.weights, args.n)
        for t in args.tasks
        if (args.weights / t / "model.safetensors").is_file()
    }
    if args.out:
        args.out.write_text(json.dumps(res, indent=2))
    if args.json:
        print(json.dumps({t: {k: v for k, v in r.items() if k != "_n"} for t, r in res.items()}))
        return
    keys = KEYS
    print("| task | images with lesions | " + " | ".join(keys) + " |")
    print("|---|---|" + "---|" * len(keys))
    for t, r in res.items():
        print(f"| {t} | {r['_n']} | " + " | ".join(f"{r[k]:.3f}" for k in keys) + " |")


if __name__ == "__main__":
    main()
