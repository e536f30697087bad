"""Which distribution check? The variants compared to choose ``diffmic.ood``'s, on one cached training run.

For a run folder of ``python -m diffmic train --task T`` (model + ``conditioning.npz``), fit each variant on
the training conditioning, threshold it at 95 % of the validation images, and score the held-out test
images (in-distribution) against the other tasks' test images and the real images of ``benchmarks/ood.py``:
- Gaussians (``ood_fit.fit_check``) on the ``global``, ``local`` or ``both`` parts of the conditioning;
  full Ledoit-Wolf covariance, the same on standardised features, or only the leading 32 / 128 principal
  directions; fitted on the unaugmented view or on every cached view;
- baselines without fitting: 1 - the fused prior's top probability (MSP), the energy of the fused logits;
- the 10th-nearest-neighbour cosine distance to the training images (unaugmented view; Sun et al. 2022).
``gap``: log10 of (1st percentile of out-of-distribution scores / 99th percentile of in-distribution
scores); above 0 the two barely overlap.

    python benchmarks/ood_variants.py runs/fundus --task fundus --train-size 3000 [--n 300]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from ood import foreign_images, test_images  # noqa: E402

from diffmic.conditioning import ConditioningCache  # noqa: E402
from diffmic.data.datasets import synthetic_splits  # noqa: E402
from diffmic.metrics import auroc  # noqa: E402
from diffmic.model import DiffMIC  # noqa: E402
from diffmic.ood import feature_part  # noqa: E402
from diffmic.ood_fit import fit_check, fit_threshold  # noqa: E402
from diffmic.tasks import generated_tasks  # noqa: E402
from diffmic.transforms import normalise, resize_square  # noqa: E402

SETS = ("val", "in", "out")
VARIANTS = {
    "LW": {},
    "std+LW": {"standardise": True},
    "PCA32": {"components": 32},
    "PCA128": {"components": 128},
}


@torch.inference_mode()
def conditioning(model: DiffMIC, images) -> tuple[np.ndarray, np.ndarray]:
    """Conditioning vectors (N, D) and fused logits (N, C) of images of any size."""
    from PIL import Image

    size, feats, logits = model.config.input_size, [], []
    for start in range(0, len(images), 32):
        batch = [
            p if p.shape[:2] == (size, size) else resize_square(Image.fromarray(p), size)
            for p in images[start : start + 32]
        ]
        c = model.condition(normalise(np.stack(batch), model.config))
        feats.append(c.features.numpy())
        logits.append(c.guidance.fused_logits.numpy())
    return np.concatenate(feats), np.concatenate(logits)


def summary(val: np.ndarray, inside: np.ndarray, outside: np.ndarray) -> dict[str, float]:
    """AUROC, acceptance of the in-distribution images at the validation threshold, and the gap."""
    threshold = fit_threshold(val, 0.95)
    positive = min(inside.min(), outside.min()) > 0
    gap = np.log10(np.percentile(outside, 1) / np.percentile(inside, 99)) if positive else float("nan")
    return {"auroc": auroc(inside, outside), "accept": float(np.mean(inside <= threshold)), "gap": float(gap)}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("run", type=Path, help="run folder: the model and conditioning.npz")
    p.add_argument("--task", required=True, choices=generated_tasks())
    p.add_argument(
        "--train-size", type=int, default=3000, help="as given to train (fixes the validation split)"
    )
    p.add_argument("--n", type=int, default=300, help="held-out test images per task")
    args = p.parse_args()
    torch.set_num_threads(2)
    model = DiffMIC.from_pretrained(args.run, load_ood=False)
    size, local = model.config.input_size, model.dcg.local_dim
    train = ConditioningCache.load(args.run / "conditioning.npz")
    val_images = synthetic_splits(args.task, args.train_size, 0, size, seed=0).val.images
    others = [test_images(t, args.n, size) for t in generated_tasks() if t != args.task]
    out_images = list(np.concatenate(others)) + list(foreign_images().values())
    data = dict(
        zip(
            SETS,
            (conditioning(model, x) for x in (val_images, test_images(args.task, args.n, size), out_images)),
            strict=True,
        )
    )
    rows = {}
    for views in ("view 0", "all views"):
        feats = train.features[:, :1] if views == "view 0" else train.features
        labels = np.repeat(train.labels, feats.shape[1])
        feats = feats.reshape(-1, feats.shape[-1])
        for part in ("global", "local", "both"):
            for name, kwargs in VARIANTS.items():
                check = fit_check(feature_part(feats, part, local), labels, **kwargs)
                rows[f"{part}, {name}, {views}"] = summary(
                    *(check.score(feature_part(data[s][0], part, local)) for s in SETS)
                )
    rows["MSP of the fused prior"] = summary(
        *(1 - torch.softmax(torch.as_tensor(data[s][1]), -1).amax(-1).numpy() for s in SETS)
    )
    rows["energy of the fused logits"] = summary(
        *(-torch.logsumexp(torch.as_tensor(data[s][1]), -1).numpy() for s in SETS)
    )
    bank = feature_part(train.features[:, 0], "global", local)
    bank = bank / np.linalg.norm(bank, axis=1, keepdims=True)

    def knn(f: np.ndarray, k: int = 10) -> np.ndarray:
        f = feature_part(f, "global", local)
        return 1 - np.sort((f / np.linalg.norm(f, axis=1, keepdims=True)) @ bank.T, axis=1)[:, -k]

    rows["kNN (k = 10) cosine, global"] = summary(*(knn(data[s][0]) for s in SETS))
    print(
        f"{args.task}: {len(train)} training images x {train.views} views, {len(val_images)} validation, "
        f"{args.n} test, {len(out_images)} out-of-distribution\n"
    )
    print("| detector | AUROC | accepted | gap |\n|---|---|---|---|")
    for name, r in rows.items():
        print(f"| {name} | {r['auroc']:.4f} | {r['accept']:.3f} | {r['gap']:+.2f} |")


if __name__ == "__main__":
    main()
