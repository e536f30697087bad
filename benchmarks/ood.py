"""Does the distribution check tell the images a model knows from the ones it does not?

Per bundled model (``--weights``/<task>/ with ``ood.safetensors``): the score of ``diffmic.ood`` on
- in-distribution: the task's held-out generated test images (indices never used in training or validation);
- out-of-distribution: the other tasks' held-out test images, and real images of other kinds that ship with
  installed packages (pydicom's test DICOMs: CT, MR, ultrasound, nuclear medicine, a segmentation, colour
  test patterns; matplotlib's, gradio's and scikit-learn's sample photographs).
``auroc``: the area under the ROC curve of the score, in-distribution against all out-of-distribution
images; ``accept_rate``: the fraction of in-distribution images at or below the stored threshold. The
markdown table also splits the AUROC by source, says how many real images are flagged and names the real
image that comes closest to being accepted.

    python benchmarks/ood.py [--weights weights] [--tasks fundus derm placenta] [--n 300] [--json] [--out F]
"""

from __future__ import annotations

import argparse
import json
import sys
import warnings
from importlib import util
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from diffmic.data.datasets import synthetic_splits  # noqa: E402
from diffmic.hub import ModelLoadError  # noqa: E402
from diffmic.imageio import ImageLoadError, load_image  # noqa: E402
from diffmic.metrics import auroc  # noqa: E402
from diffmic.model import DiffMIC  # noqa: E402
from diffmic.tasks import generated_tasks  # noqa: E402
from diffmic.transforms import normalise, resize_square  # noqa: E402

# real images of other kinds, by the package that ships them and their path inside it
FOREIGN = {
    "pydicom": [
        f"data/test_files/{name}"
        for name in (
            "CT_small.dcm",  # CT
            "MR_small.dcm",  # MR
            "693_J2KI.dcm",  # CT, JPEG 2000 (decodes when Pillow has OpenJPEG)
            "examples_overlay.dcm",  # MR
            "examples_palette.dcm",  # ultrasound, palette colour
            "examples_rgb_color.dcm",  # ultrasound, RGB
            "examples_ybr_color.dcm",  # ultrasound, JPEG
            "JPEG2000.dcm",  # nuclear medicine
            "image_dfl.dcm",  # secondary capture, deflated
            "liver_1frame.dcm",  # segmentation mask
            "SC_rgb_jpeg_dcmd.dcm",  # colour test pattern
        )
    ],
    "matplotlib": [
        "mpl-data/sample_data/grace_hopper.jpg",
        "mpl-data/sample_data/Minduka_Present_Blue_Pack.png",
        "mpl-data/sample_data/logo2.png",
    ],
    "gradio": [f"media_assets/images/{n}" for n in ("cheetah1.jpg", "lion.jpg", "tower.jpg", "groot.jpeg")],
    "sklearn": ["datasets/images/china.jpg", "datasets/images/flower.jpg"],
}


def foreign_images() -> dict[str, np.ndarray]:
    """The real images of ``FOREIGN`` that are installed and decode, by name: RGB uint8 arrays."""
    images = {}
    for package, paths in FOREIGN.items():
        spec = util.find_spec(package)
        if spec is None or not spec.submodule_search_locations:
            continue
        root = Path(next(iter(spec.submodule_search_locations)))
        for rel in paths:
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    images[f"{package}:{Path(rel).name}"] = np.asarray(load_image(root / rel))
            except (ImageLoadError, OSError) as err:
                print(f"skipping {package}:{rel}: {err}", file=sys.stderr)
    return images


@torch.inference_mode()
def scores(model: DiffMIC, images: list[np.ndarray] | np.ndarray, batch_size: int = 32) -> np.ndarray:
    """Distribution-check scores of images (any sizes; resized as the pipeline does)."""
    size = model.config.input_size
    out = []
    for start in range(0, len(images), batch_size):
        batch = images[start : start + batch_size]
        pixels = np.stack([p if p.shape[:2] == (size, size) else resize_square_array(p, size) for p in batch])
        x = normalise(pixels, model.config).to(model.device)
        out.append(model.ood_scores(model.condition(x).features))
    return np.concatenate(out)


def resize_square_array(pixels: np.ndarray, size: int) -> np.ndarray:
    """An RGB uint8 array centre-cropped and resized as the pipeline does."""
    from PIL import Image

    return resize_square(Image.fromarray(pixels), size)


def test_images(task: str, n: int, size: int) -> np.ndarray:
    """The task's first n held-out generated test images at the model's input size."""
    return synthetic_splits(task, 0, n, size, seed=0).test.images


def evaluate_task(task: str, model: DiffMIC, n: int, foreign: dict[str, np.ndarray]) -> dict:
    """AUROC (all, other tasks, real images), acceptance and real images flagged for one model."""
    size, threshold = model.config.input_size, model.config.ood_threshold
    inside = scores(model, test_images(task, n, size))
    others = np.concatenate([scores(model, test_images(t, n, size)) for t in generated_tasks() if t != task])
    real = scores(model, list(foreign.values())) if foreign else np.zeros(0)
    closest = [list(foreign)[int(real.argmin())], float(real.min() / threshold)] if len(real) else None
    return {
        "auroc": auroc(inside, np.concatenate([others, real])),
        "accept_rate": float(np.mean(inside <= threshold)),
        "_detail": {
            "auroc_other_tasks": auroc(inside, others),
            "auroc_real": auroc(inside, real) if len(real) else None,
            "other_tasks_flagged": float(np.mean(others > threshold)),
            "real_flagged": int(np.sum(real > threshold)),
            "real_accepted": [name for name, s in zip(foreign, real, strict=True) if s <= threshold],
            "closest_real": closest,
            "n_in": len(inside),
            "n_other_tasks": len(others),
            "n_real": len(real),
            "threshold": threshold,
            "features": model.config.ood_features,
        },
    }


def table(results: dict) -> str:
    """A markdown table of the results."""
    lines = [
        "| model | AUROC | AUROC vs other tasks | AUROC vs real images | in-distribution accepted "
        "| other tasks flagged | real images flagged | closest real image (score / threshold) | threshold |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for task, r in results.items():
        d = r["_detail"]
        closest = f"{d['closest_real'][0]} ({d['closest_real'][1]:.1f})" if d["closest_real"] else "—"
        real_auroc = "—" if d["auroc_real"] is None else f"{d['auroc_real']:.3f}"
        lines.append(
            f"| {task} | {r['auroc']:.3f} | {d['auroc_other_tasks']:.3f} | {real_auroc} "
            f"| {r['accept_rate']:.3f} of {d['n_in']} "
            f"| {d['other_tasks_flagged']:.3f} of {d['n_other_tasks']} "
            f"| {d['real_flagged']} of {d['n_real']} | {closest} | {d['threshold']:.3g} |"
        )
    accepted = {t: r["_detail"]["real_accepted"] for t, r in results.items() if r["_detail"]["real_accepted"]}
    for task, names in accepted.items():
        lines.append(f"\n{task} accepts: {', '.join(names)}")
    return "\n".join(lines)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--weights", type=Path, default=ROOT / "weights", help="folder of <task>/ model folders")
    p.add_argument("--tasks", nargs="+", default=generated_tasks())
    p.add_argument("--n", type=int, default=300, help="held-out test images per task (default %(default)s)")
    p.add_argument("--json", action="store_true", help="print {task: {auroc, accept_rate}}")
    p.add_argument("--out", type=Path, help="also write the full results (with the table's details) here")
    args = p.parse_args()
    torch.set_num_threads(2)
    foreign = foreign_images()
    results = {}
    for task in args.tasks:
        try:
            model = DiffMIC.from_pretrained(args.weights / task)
        except ModelLoadError as err:
            print(f"skipping {task}: {err}", file=sys.stderr)
            continue
        if model.ood_check is None or model.config.ood_threshold is None:
            print(f"skipping {task}: no distribution check (python -m diffmic fit-ood)", file=sys.stderr)
            continue
        results[task] = evaluate_task(task, model, args.n, foreign)
    if args.out:
        args.out.write_text(json.dumps(results, indent=2))
    if args.json:
        print(json.dumps({t: {k: r[k] for k in ("auroc", "accept_rate")} for t, r in results.items()}))
    else:
        print(table(results))


if __name__ == "__main__":
    main()
