"""Do the explanations point at the lesions? A pointing game against the generators' lesion masks.

On held-out generated test images that have lesions (mask not empty) — the test images only report; every
choice (ROI map, Grad-CAM variant) was made on validation images during training — a map scores a hit
when its maximum, upsampled to the input, lies within 1/16 of the input side of a lesion pixel:
- ``saliency``: the DCG's evidence map (CAM) of DiffMIC's answer, as the app shows it (against the other
  classes or against the first class: the model's ``saliency_contrast``, chosen on validation images);
- ``patch``: the ROI crop with the highest gated-attention weight holds a lesion pixel;
- ``gradcam``: the app's Grad-CAM (the model's ``cam_method`` on ``cam_stage`` of the global network);
- ``roi_map``: the map the ROIs were chosen from; ``any_patch``: a lesion in any of the K crops;
- ``gradcam_denoiser``: the same Grad-CAM through the denoiser's y0 estimate.

    python benchmarks/faithfulness.py [--tasks fundus derm placenta] [--n 300] [--json]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from diffmic.data.datasets import synthetic_splits  # noqa: E402
from diffmic.options import SamplingOptions  # noqa: E402
from diffmic.pipeline import DiffMICPipeline  # noqa: E402
from diffmic.selection import box_hits, lesion_images, points_at_lesion  # noqa: E402
from diffmic.tasks import generated_tasks  # noqa: E402

KEYS = ("saliency", "patch", "gradcam", "roi_map", "any_patch", "gradcam_denoiser")
ANSWER = SamplingOptions(sampler="ddim", steps=50, samples=8)  # the answer whose maps are scored


def score_task(task: str, weights: Path, n: int) -> dict:
    """Pointing-game hit rates of every map on one task's held-out test images."""
    pipe = DiffMICPipeline.from_pretrained(weights / task)
    cfg = pipe.config
    test = synthetic_splits(task, 0, n, cfg.input_size, seed=0).test
    tolerance = max(1, cfg.input_size // 16)
    hits: dict[str, list[bool]] = {k: [] for k in KEYS}
    for i in lesion_images(test, n):
        mask = test.masks[i]
        *_, out = items = list(pipe.run(test.images[i], ANSWER, explain=True))
        prepared = items[0]
        maps = {
            "saliency": out.saliency,
            "gradcam": out.gradcam,
            "roi_map": prepared.guidance.roi_map[0],
            "gradcam_denoiser": pipe.gradcam(prepared, out.label_index, network="denoiser"),
        }
        for name, heat in maps.items():
            hits[name].append(points_at_lesion(heat, mask, tolerance))
        inside = box_hits(out.rois.boxes, mask)  # boxes ranked by attention, in input pixels
        hits["patch"].append(bool(inside[0]))
        hits["any_patch"].append(bool(inside.any()))
    out = {k: round(float(np.mean(v)), 3) for k, v in hits.items()}
    out["_n"] = len(hits["patch"])
    out["_gradcam"] = f"{cfg.cam_method} on stage {cfg.cam_stage}"
    out["_roi_map"] = cfg.roi_map
    out["_saliency_contrast"] = cfg.saliency_contrast
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--tasks", nargs="+", default=generated_tasks())
    p.add_argument("--n", type=int, default=300, help="test images drawn (those with lesions are scored)")
    p.add_argument("--json", action="store_true")
    p.add_argument("--out", type=Path, help="also write the JSON here")
    p.add_argument("--weights", type=Path, default=ROOT / "weights", help="folder of <task>/ model folders")
    p.add_argument("--threads", type=int, default=2)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    res = {
        t: score_task(t, args.weights, args.n)
        for t in args.tasks
        if (args.weights / t / "model.safetensors").is_file()
    }
    if args.out:
        args.out.write_text(json.dumps(res, indent=2))
    if args.json:
        print(json.dumps({t: {k: v for k, v in r.items() if not k.startswith("_")} for t, r in res.items()}))
        return
    print("| task | images with lesions | " + " | ".join(KEYS) + " |")
    print("|---|---|" + "---|" * len(KEYS))
    for t, r in res.items():
        print(f"| {t} | {r['_n']} | " + " | ".join(f"{r[k]:.3f}" for k in KEYS) + " |")


if __name__ == "__main__":
    main()
