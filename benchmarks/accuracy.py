"""Accuracy of the bundled models on held-out generated test sets, DiffMIC beside its priors and a plain CNN.

Test images come from an index range never used for training or validation
(``diffmic.data.datasets.SYNTHETIC_TEST_START``). Methods:
- ``cnn``: the plain classifier of ``diffmic.baseline`` (same backbone, data, augmentation, epochs and
  model selection), read from ``runs/cnn_<task>`` (train it with ``python -m diffmic.baseline``);
- ``global``, ``local``, ``fused``: DiffMIC's DCG priors alone;
- ``diffmic``: the full model (sampler and steps as given; default the app's DDPM, T = 1000).

    python benchmarks/accuracy.py [--tasks fundus derm placenta] [--n 500] [--json] [--write-cards]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from diffmic.baseline import load_cnn, predict_probs  # noqa: E402
from diffmic.data.datasets import synthetic_splits  # noqa: E402
from diffmic.evaluate import evaluate  # noqa: E402
from diffmic.metrics import classification_summary  # noqa: E402
from diffmic.model import DiffMIC  # noqa: E402

KEYS = ("accuracy", "macro_f1", "kappa", "ece")
METHODS = ("cnn", "global", "local", "fused", "diffmic", "diffmic_single")


def cnn_row(task: str, n: int) -> dict:
    """The plain-CNN baseline's metrics on the same test images, when ``runs/cnn_<task>`` exists."""
    cnn_dir = ROOT / "runs" / f"cnn_{task}"
    if not (cnn_dir / "cnn.json").is_file():
        return {}
    cnn, cfg = load_cnn(cnn_dir)
    test = synthetic_splits(task, 0, n, cfg.image_size, seed=0).test
    summary = classification_summary(test.labels, predict_probs(cnn, test, cfg), cfg.class_names, cfg.ordinal)
    return {"cnn": {k: summary[k] for k in KEYS}}


def evaluate_task(task: str, weights: Path, n: int, sampler: str, steps: int | None, samples: int) -> dict:
    """All methods' headline metrics on n held-out generated images of one task."""
    model = DiffMIC.from_pretrained(weights / task)
    test = synthetic_splits(task, 0, n, model.config.image_size, seed=0).test
    start = time.perf_counter()
    report = evaluate(model, test, sampler=sampler, steps=steps, samples=samples, seed=0)
    seconds = time.perf_counter() - start
    out = {
        m: {k: report[m][k] for k in KEYS}
        for m in ("global", "local", "fused", "diffmic", "diffmic_single")
        if m in report
    }
    if "uncertainty" in report:
        out["_uncertainty"] = report["uncertainty"]
    out.update(cnn_row(task, n))
    out["_meta"] = {
        "n": len(test),
        "sampler": sampler,
        "steps": steps,
        "samples": samples,
        "seconds": round(seconds, 1),
        "kappa": "quadratic" if model.config.ordinal else "unweighted",
    }
    return out


def table(task: str, res: dict) -> str:
    """A markdown table of one task's results."""
    meta = res["_meta"]
    lines = [
        f"**{task}** — {meta['n']} held-out images, DiffMIC with {meta['sampler']} "
        f"({meta['steps'] or 'T'} steps), kappa {meta['kappa']}",
        "",
        "| method | accuracy | macro-F1 | kappa | ECE |",
        "|---|---|---|---|---|",
    ]
    for m in METHODS:
        if m in res:
            r = res[m]
            lines.append(
                f"| {m} | {r['accuracy']:.3f} | {r['macro_f1']:.3f} | {r['kappa']:.3f} | {r['ece']:.3f} |"
            )
    return "\n".join(lines)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--tasks", nargs="+", default=["fundus", "derm", "placenta"])
    p.add_argument("--n", type=int, default=500)
    p.add_argument("--sampler", default="ddpm")
    p.add_argument("--steps", type=int)
    p.add_argument(
        "--samples", type=int, default=8, help="stochastic chains per image (the app's default: 8)"
    )
    p.add_argument("--json", action="store_true")
    p.add_argument("--weights", type=Path, default=ROOT / "weights", help="folder of <task>/ model folders")
    p.add_argument("--out", type=Path, help="also write the JSON here")
    p.add_argument(
        "--add-cnn", action="store_true", help="add the CNN rows to the --out file of an earlier run"
    )
    args = p.parse_args()
    torch.set_num_threads(2)
    results: dict = {}
    if args.add_cnn:  # only (re)compute the CNN rows of an earlier --out file
        results = json.loads(args.out.read_text())
        for task in args.tasks:
            if task in results:
                results[task].update(cnn_row(task, results[task]["_meta"]["n"]))
        args.tasks = []
    for task in args.tasks:
        if not (args.weights / task / "model.safetensors").is_file():
            print(f"skipping {task}: no {args.weights / task}", file=sys.stderr)
            continue
        results[task] = evaluate_task(task, args.weights, args.n, args.sampler, args.steps, args.samples)
    if args.out:
        args.out.write_text(json.dumps(results, indent=2))
    if args.json:
        print(
            json.dumps({t: {m: v for m, v in r.items() if not m.startswith("_")} for t, r in results.items()})
        )
    else:
        print("\n\n".join(table(t, r) for t, r in results.items()))


if __name__ == "__main__":
    main()
