"""Accuracy of the bundled models on held-out generated test sets: DiffMIC beside its priors and a plain CNN.

Test images come from an index range never used for training or validation
(``diffmic.data.datasets.SYNTHETIC_TEST_START``). Methods:
- ``cnn``: the bundled plain-CNN baseline ``weights/baselines/<task>`` (``diffmic.baseline``: the
  global network's backbone, same data, augmentation, epoch cap, early stopping and selection);
- ``global``, ``local``, ``fused``: DiffMIC's DCG priors alone;
- ``diffmic``: the full model with the app's estimator (DDPM, T = 1000 steps, 8 chains averaged);
- ``diffmic_single``: the first of those chains alone.
Per task also: paired bootstrap 95 % intervals of accuracy(DiffMIC) - accuracy(CNN) and - accuracy(fused
prior) (``ci_vs_cnn``, ``ci_vs_fused``), how the chains' uncertainty relates to errors, and the fair
counterpart of one chain (``one_draw``): a chain is one sample of the label, so it is set beside one class
drawn from the fused prior (its expected accuracy: the mean probability of the true class), with one
chain's expected accuracy taken over all 8 chains (``chain_mean``). DiffMIC's answer is itself random (the
chains' noise): ``over_seeds`` reruns the chains with ``--seeds`` seeds and gives each seed's accuracy, their
mean, and the interval of DiffMIC − fused prior on each image's correctness averaged over the seeds — the
headline rows are the first seed's, what the app answers by default. ``ceiling`` is the best accuracy possible
on these images (the Bayes rule on what the generators' plans let an image show, ``benchmarks/ceiling.py``);
the table gives each row's gap to it.

    python benchmarks/accuracy.py [--tasks fundus derm placenta] [--n 500] [--seeds 5] [--json] [--out FILE]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from diffmic.baseline_model import CNNClassifier, predict_probs  # noqa: E402
from diffmic.data.datasets import synthetic_splits  # noqa: E402
from diffmic.data.synthetic.ceiling import best_possible  # noqa: E402
from diffmic.evaluate import predict_dataset, report_from_predictions  # noqa: E402
from diffmic.metrics import classification_summary, paired_bootstrap_ci  # noqa: E402
from diffmic.options import APP_DEFAULT, SamplingOptions  # noqa: E402
from diffmic.pipeline import DiffMICPipeline  # noqa: E402
from diffmic.tasks import generated_tasks  # noqa: E402

KEYS = ("accuracy", "macro_f1", "kappa", "ece")
METHODS = ("cnn", "global", "local", "fused", "diffmic", "diffmic_single")


def evaluate_task(task: str, weights: Path, n: int, options: SamplingOptions, seeds: int = 1) -> dict:
    """Every method's headline metrics on n held-out generated images of one task, with the intervals
    (and DiffMIC's accuracy under ``seeds`` chain seeds, ``options.seed`` first)."""
    pipe = DiffMICPipeline.from_pretrained(weights / task)
    cfg = pipe.config
    test = synthetic_splits(task, 0, n, cfg.input_size, seed=0).test
    start = time.perf_counter()
    res = predict_dataset(pipe, test, options)
    seconds = time.perf_counter() - start
    report = report_from_predictions(res, cfg.class_names, cfg.ordinal, options)
    out: dict = {m: {k: report[m][k] for k in KEYS} for m in METHODS if m in report}
    out["ceiling"] = round(best_possible(task, len(test), seed=0), 4)
    labels = res["labels"]
    correct = {
        "diffmic": res["diffmic"].mean(1).argmax(-1) == labels,
        "fused": res["fused"].argmax(-1) == labels,
    }
    out["ci_vs_fused"] = [round(v, 4) for v in paired_bootstrap_ci(correct["diffmic"], correct["fused"])]
    if seeds > 1:
        out["over_seeds"] = seed_spread(pipe, test, options, seeds, correct)
    rows = np.arange(len(labels))
    chains_right = res["diffmic"].argmax(-1) == labels[:, None]  # (N, chains)
    out["one_draw"] = {
        "chain_mean": round(float(chains_right.mean()), 4),
        "fused_prior": round(float(res["fused"][rows, labels].mean()), 4),
    }
    cnn_dir = weights / "baselines" / task
    if (cnn_dir / "config.json").is_file():
        cnn = CNNClassifier.from_pretrained(cnn_dir)
        probs = predict_probs(cnn, test)
        summary = classification_summary(labels, probs, cfg.class_names, cfg.ordinal)
        out["cnn"] = {k: summary[k] for k in KEYS}
        out["ci_vs_cnn"] = [
            round(v, 4) for v in paired_bootstrap_ci(correct["diffmic"], probs.argmax(-1) == labels)
        ]
    if "uncertainty" in report:
        out["uncertainty"] = report["uncertainty"]
    out["_meta"] = {
        "n": len(test),
        **options.to_dict(),
        "seconds": round(seconds, 1),
        "kappa": "quadratic" if cfg.ordinal else "unweighted",
    }
    return out


def seed_spread(
    pipe: DiffMICPipeline, test: Dataset, options: SamplingOptions, seeds: int, correct: dict[str, np.ndarray]
) -> dict:
    """DiffMIC's accuracy with the chains rerun under further seeds (``correct`` holds the first run's)."""
    runs = [correct["diffmic"]]
    for k in range(1, seeds):
        res = predict_dataset(pipe, test, options.with_(seed=options.seed + k * 1_000_003))
        runs.append(res["diffmic"].mean(1).argmax(-1) == res["labels"])
    per_image = np.mean(runs, 0)  # each image's correctness averaged over the seeds
    return {
        "seeds": seeds,
        "accuracy": [round(float(r.mean()), 4) for r in runs],
        "mean": round(float(per_image.mean()), 4),
        "minus_fused": round(float(per_image.mean() - correct["fused"].mean()), 4),
        "ci_vs_fused": [round(v, 4) for v in paired_bootstrap_ci(per_image, correct["fused"])],
    }


def table(task: str, res: dict) -> str:
    """A markdown table of one task's results."""
    meta = res["_meta"]
    lines = [
        f"**{task}** — {meta['n']} held-out images, DiffMIC with {meta['sampler']} "
        f"({meta['steps'] or 'T'} steps, {meta['samples']} chains), kappa {meta['kappa']}",
        "",
        f"Best possible on these images (the Bayes ceiling): {res['ceiling']:.3f}.",
        "",
        "| method | accuracy | gap to best | macro-F1 | kappa | ECE |",
        "|---|---|---|---|---|---|",
    ]
    for m in METHODS:
        if m in res:
            r = res[m]
            lines.append(
                f"| {m} | {r['accuracy']:.3f} | {r['accuracy'] - res['ceiling']:+.3f} | {r['macro_f1']:.3f} "
                f"| {r['kappa']:.3f} | {r['ece']:.3f} |"
            )
    lines += [f"\n{sentence}" for sentence in comparisons(res)]
    return "\n".join(lines)


def comparisons(res: dict) -> list[str]:
    """One chain beside one prior draw, and the paired intervals, as sentences (this table, model cards)."""
    out = []
    if "one_draw" in res:
        d = res["one_draw"]
        out.append(
            f"One draw of the label, expected accuracy: one DiffMIC chain {d['chain_mean']:.3f}, "
            f"one class drawn from the fused prior {d['fused_prior']:.3f}."
        )
    for key, what in (("ci_vs_fused", "the fused prior"), ("ci_vs_cnn", "the CNN")):
        if key in res:
            low, high = res[key]
            out.append(f"Accuracy of DiffMIC − {what}: 95 % paired bootstrap CI [{low:+.3f}, {high:+.3f}].")
    if "over_seeds" in res:
        s = res["over_seeds"]
        low, high = s["ci_vs_fused"]
        out.append(
            f"Over {s['seeds']} chain seeds DiffMIC's accuracy is {min(s['accuracy']):.3f}–"
            f"{max(s['accuracy']):.3f}, mean {s['mean']:.3f}: {s['minus_fused']:+.3f} against the fused "
            f"prior, 95 % paired bootstrap CI [{low:+.3f}, {high:+.3f}]."
        )
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--tasks", nargs="+", default=generated_tasks())
    p.add_argument("--n", type=int, default=500)
    p.add_argument("--sampler", default=APP_DEFAULT.sampler)
    p.add_argument("--steps", type=int, default=APP_DEFAULT.steps)
    p.add_argument("--samples", type=int, default=APP_DEFAULT.samples, help="chains per image (app: 8)")
    p.add_argument("--seeds", type=int, default=5, help="chain seeds for DiffMIC's spread (default 5)")
    p.add_argument("--json", action="store_true")
    p.add_argument("--weights", type=Path, default=ROOT / "weights", help="folder of <task>/ model folders")
    p.add_argument("--out", type=Path, help="also write the JSON (with run details) here")
    p.add_argument("--threads", type=int, default=2)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    options = SamplingOptions(args.sampler, args.steps, args.samples)
    results: dict = {}
    for task in args.tasks:
        if not (args.weights / task / "model.safetensors").is_file():
            print(f"skipping {task}: no {args.weights / task}", file=sys.stderr)
            continue
        results[task] = evaluate_task(task, args.weights, args.n, options, args.seeds)
    if args.out:
        args.out.write_text(json.dumps(results, indent=2))
    if args.json:
        print(
            json.dumps({t: {k: v for k, v in r.items() if not k.startswith("_")} for t, r in results.items()})
        )
    else:
        print("\n\n".join(table(t, r) for t, r in results.items()))


if __name__ == "__main__":
    main()
