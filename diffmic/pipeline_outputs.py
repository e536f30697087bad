"""What a pipeline run yields: the ``Prepared`` image, a ``RecordedState`` per reverse step (``recorded``),
and the ``DiffMICOutput`` (the answer, its ``RegionsOfInterest`` and everything behind it; ``to_json``)."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from .chain import DenoiseState
from .model import Conditioning
from .ood import NO_OOD_CHECK
from .options import SamplingOptions
from .trajectory import Trajectory


@dataclass
class Prepared:
    """One image after decoding, preprocessing and the once-per-image network passes."""

    pixels: np.ndarray  # uint8 (S, S, 3): the model's view of the image, S = config.input_size
    x: torch.Tensor  # (1, 3, S, S) normalised, on the model's device
    conditioning: Conditioning  # batch of one

    @property
    def guidance(self):
        """The DCG outputs (priors, CAM, ROIs)."""
        return self.conditioning.guidance


@dataclass
class RecordedState(DenoiseState):
    """A step's state as ``run`` yields it: the ``DenoiseState`` with the run's trajectory, recorded up to and
    including this step (the same object the ``DiffMICOutput`` carries: a stream reads the run from it)."""

    trajectory: Trajectory | None = None


def recorded(states: Iterable[DenoiseState], trajectory: Trajectory) -> Iterator[RecordedState]:
    """The states of one image's chain, each recorded in ``trajectory`` and passed on with it."""
    for state in states:
        trajectory.record(state)
        out = RecordedState(state.index, state.total, state.t, state.sample, state.temperature, trajectory)
        out.__dict__["probs"] = state.probs  # computed once (``record`` read it)
        yield out


@dataclass
class RegionsOfInterest:
    """The DCG's ROI patches of one image, ranked by attention (rank 1 = most attended)."""

    boxes: np.ndarray  # (K, 4) int (x0, y0, x1, y1) in the pixels of ``DiffMICOutput.pixels``
    attention: np.ndarray  # (K,) gated-attention weights, sum to 1, descending
    crops: list[np.ndarray]  # K uint8 patches, cut from the full-resolution input


@dataclass
class DiffMICOutput:
    """The answer for one image and everything behind it; ``to_json()`` is what the CLI and the API return."""

    label: str
    label_index: int
    probabilities: dict[str, float]
    prior: dict[str, dict[str, float]]  # global / local / fused → class → p
    uncertainty: dict[str, Any]
    options: SamplingOptions
    steps: int  # reverse steps actually run
    seconds: float
    sample_probs: np.ndarray  # (N, C) final probabilities of each chain
    pixels: np.ndarray  # uint8 (S, S, 3) the model's view of the image
    saliency: np.ndarray  # (s, s) in [0, 1]: the DCG's evidence map (CAM) of the answer
    rois: RegionsOfInterest
    trajectory: Trajectory
    gradcam: np.ndarray | None = None  # (S', S') in [0, 1] when asked for
    # the distribution check (diffmic.ood): available, score (higher = less like the training images),
    # threshold, flagged (score > threshold); NO_OOD_CHECK for a model saved without one
    ood: dict[str, Any] = field(default_factory=lambda: dict(NO_OOD_CHECK))
    extras: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        """A JSON-serialisable dict with the documented fields."""
        return {
            "label": self.label,
            "label_index": self.label_index,
            "probabilities": self.probabilities,
            "prior": self.prior,
            "uncertainty": self.uncertainty,
            "sampler": self.options.sampler,
            "steps": self.steps,
            "samples": self.options.samples,
            "seed": self.options.seed,
            "seconds": round(self.seconds, 4),
            "ood": self.ood,
            "rois": [
                {"box": [int(v) for v in box], "attention": round(float(a), 4)}
                for box, a in zip(self.rois.boxes, self.rois.attention, strict=True)
            ],
            **self.extras,
        }


def as_dict(names: Sequence[str], values: torch.Tensor | np.ndarray) -> dict[str, float]:
    """{class name: value} of a (C,) vector."""
    flat = np.asarray(values.detach().cpu() if isinstance(values, torch.Tensor) else values).reshape(-1)
    return {n: float(v) for n, v in zip(names, flat, strict=True)}
