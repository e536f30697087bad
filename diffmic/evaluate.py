"""Evaluate a DiffMIC on a labelled dataset: DiffMIC itself and, side by side, each of its priors.

For every method (``global``, ``local``, ``fused`` prior, ``diffmic``): accuracy, macro-F1, Cohen's
kappa (quadratic-weighted for ordinal grades), ECE, confusion matrix and per-class figures. For
DiffMIC with N > 1 samples per image it adds how the sample-based uncertainty relates to errors:
accuracy on the images whose top-2 classes are distinguishable (paired t-test) versus the rest.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset
from tqdm import tqdm

from .data.datasets import batch_of
from .metrics import classification_summary
from .options import SamplingOptions
from .pipeline import DiffMICPipeline
from .transforms import normalise
from .uncertainty import answer_probabilities, batch_sample_uncertainty

METHODS = ("global", "local", "fused", "diffmic")


@torch.no_grad()
def predict_dataset(
    pipe: DiffMICPipeline,
    dataset: Dataset,
    options: SamplingOptions,
    *,
    batch_size: int = 64,
    progress: bool = False,
) -> dict[str, np.ndarray]:
    """Labels, priors (global/local/fused), DiffMIC's chain probabilities (B, N, C) and final label
    vectors y0 for a whole dataset. Batch b's chains are seeded with ``options.seed + first index``; with
    ``progress``, a tqdm bar counts the images scored."""
    out: dict[str, list[np.ndarray]] = {
        k: [] for k in ("labels", "global", "local", "fused", "diffmic", "y0")
    }
    cfg = pipe.config
    bar = tqdm(total=len(dataset), desc="scoring", unit="images", disable=not progress, leave=False)
    for start in range(0, len(dataset), batch_size):
        idx = np.arange(start, min(start + batch_size, len(dataset)))
        pixels, labels = batch_of(dataset, idx)
        x = normalise(pixels.numpy(), cfg).to(pipe.model.device)
        state, cond = pipe.classify_batch(x, options.with_(seed=options.seed + start))
        g = cond.guidance
        out["labels"].append(labels.numpy())
        out["global"].append(g.global_prior.cpu().numpy())
        out["local"].append(g.local_prior.cpu().numpy())
        out["fused"].append(g.fused_prior.cpu().numpy())
        out["diffmic"].append(state.probs.cpu().numpy())
        out["y0"].append(state.sample.cpu().numpy())
        bar.update(len(idx))  # the bar counts images, whatever the batch size
    bar.close()
    return {k: np.concatenate(v) for k, v in out.items()}


def uncertainty_report(sample_probs: np.ndarray, labels: np.ndarray) -> dict[str, Any]:
    """Aggregate the per-image sample uncertainty (B, N, C) over a dataset."""
    unc = batch_sample_uncertainty(sample_probs)
    correct = answer_probabilities(sample_probs).argmax(-1) == labels
    dist = np.array([u.distinguishable for u in unc])

    def acc(mask: np.ndarray) -> float | None:
        return float(correct[mask].mean()) if mask.any() else None

    return {
        "samples": int(sample_probs.shape[1]),
        "mean_agreement": float(np.mean([u.agreement for u in unc])),
        "fraction_distinguishable": float(dist.mean()),
        "accuracy_distinguishable": acc(dist),
        "accuracy_not_distinguishable": acc(~dist),
    }


def evaluate(
    pipe: DiffMICPipeline,
    dataset: Dataset,
    options: SamplingOptions | None = None,
    *,
    batch_size: int = 64,
    progress: bool = False,
) -> dict[str, Any]:
    """Metrics of DiffMIC and of its global, local and fused priors on ``dataset``."""
    options = options or SamplingOptions()
    res = predict_dataset(pipe, dataset, options, batch_size=batch_size, progress=progress)
    return report_from_predictions(res, pipe.config.class_names, pipe.config.ordinal, options)


def report_from_predictions(
    res: dict[str, np.ndarray], class_names: list[str], ordinal: bool, options: SamplingOptions
) -> dict[str, Any]:
    """The metrics report of ``predict_dataset``'s output."""
    samples = int(res["diffmic"].shape[1])
    report: dict[str, Any] = {
        "sampler": options.sampler,
        "steps": options.steps,
        "samples": samples,
        "n": int(len(res["labels"])),
    }
    answer = answer_probabilities(res["diffmic"])  # (B, C): what the pipeline answers for each image
    for method in METHODS:
        probs = answer if method == "diffmic" else res[method]
        report[method] = classification_summary(res["labels"], probs, class_names, ordinal)
    if samples > 1:
        report["uncertainty"] = uncertainty_report(res["diffmic"], res["labels"])
        # what a single chain would have answered (the first sample of each image)
        report["diffmic_single"] = classification_summary(
            res["labels"], res["diffmic"][:, 0], class_names, ordinal
        )
    report["probabilities"] = answer.round(6).tolist()  # per image
    report["predictions"] = answer.argmax(-1).tolist()
    report["labels"] = res["labels"].tolist()
    return report


def format_table(report: dict[str, Any]) -> str:
    """A plain-text table of the headline metrics per method."""
    lines = [f"{'method':<10}{'accuracy':>10}{'macro-F1':>10}{'kappa':>10}{'ECE':>10}"]
    for method in METHODS:
        m = report[method]
        lines.append(
            f"{method:<10}{m['accuracy']:>10.3f}{m['macro_f1']:>10.3f}{m['kappa']:>10.3f}{m['ece']:>10.3f}"
        )
    return "\n".join(lines)
