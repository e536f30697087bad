"""A record of one reverse-diffusion run, step by step, for the plots and the downloads.

``Trajectory.record(state)`` keeps the class probabilities of every stochastic sample after each step.
The plots read decimated summaries, per class the mean over the samples (``answer_probabilities``: the
statistic the answer reports, so the last step's mean is the answer) and the min–max band; the downloads
hold those same summaries at every step (CSV, JSON) and, in the JSON, every sample.
"""

from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .chain import DenoiseState
from .uncertainty import answer_probabilities

MAX_PLOT_POINTS = 250  # per trace: enough for a smooth line, light enough to stream


@dataclass
class Trajectory:
    """Class probabilities (steps, samples, classes) of one image's chain, filled as the steps come in."""

    class_names: list[str]
    samples: int
    prior: np.ndarray  # (C,) the prior mean of the chain (probabilities)
    total: int = 0  # number of steps of the chain, known from the first state
    steps_done: int = 0
    t: np.ndarray = field(init=False)
    probs: np.ndarray = field(init=False)

    def __post_init__(self) -> None:
        self.prior = np.asarray(self.prior, np.float32).reshape(-1)
        self._allocate(self.total)

    def _allocate(self, total: int) -> None:
        self.total = total
        self.t = np.zeros(total, np.int64)
        self.probs = np.zeros((total, self.samples, len(self.class_names)), np.float32)

    def record(self, state: DenoiseState) -> None:
        """Store the state of one step (batch of one image)."""
        if state.total != self.total:
            self._allocate(state.total)
        i = state.index
        self.t[i] = state.t
        self.probs[i] = state.probs[0].detach().cpu().numpy()
        self.steps_done = i + 1

    @property
    def timesteps(self) -> np.ndarray:
        """Timesteps done so far (T-1 ... 0)."""
        return self.t[: self.steps_done]

    @property
    def mean(self) -> np.ndarray:
        """(steps done, C) probabilities averaged over the samples."""
        return answer_probabilities(self.probs[: self.steps_done])

    @property
    def low(self) -> np.ndarray:
        """(steps done, C) minimum over the samples."""
        return self.probs[: self.steps_done].min(1)

    @property
    def high(self) -> np.ndarray:
        """(steps done, C) maximum over the samples."""
        return self.probs[: self.steps_done].max(1)

    @property
    def current(self) -> np.ndarray:
        """(C,) mean probabilities after the latest step (the prior before any step)."""
        return self.mean[-1] if self.steps_done else self.prior

    def plot_indices(self, max_points: int = MAX_PLOT_POINTS) -> np.ndarray:
        """Indices of at most ``max_points`` evenly spread steps done, always with the latest."""
        n = self.steps_done
        if n <= max_points:
            return np.arange(n)
        return np.unique(np.linspace(0, n - 1, max_points).round().astype(np.int64))

    # ------------------------------------------------------------------ downloads
    def to_csv(self) -> str:
        """One row per step: step, t, then mean / min / max probability of each class."""
        out = io.StringIO()
        writer = csv.writer(out)
        header = ["step", "t"]
        for stat in ("mean", "min", "max"):
            header += [f"{stat}:{name}" for name in self.class_names]
        writer.writerow(header)
        mean, low, high = self.mean, self.low, self.high
        for i in range(self.steps_done):
            values = np.concatenate([mean[i], low[i], high[i]])
            writer.writerow([i + 1, int(self.t[i]), *(f"{v:.6f}" for v in values)])
        return out.getvalue()

    def to_dict(self) -> dict[str, Any]:
        """Every sample's probabilities at every step, with the timesteps, the prior and what is plotted
        (mean, min and max over the samples, (steps, C) each)."""
        return {
            "class_names": list(self.class_names),
            "steps": self.steps_done,
            "samples": self.samples,
            "prior": [round(float(v), 6) for v in self.prior],
            "t": self.timesteps.tolist(),
            "mean": np.round(self.mean, 6).tolist(),
            "min": np.round(self.low, 6).tolist(),
            "max": np.round(self.high, 6).tolist(),
            "probabilities": np.round(self.probs[: self.steps_done], 6).transpose(1, 0, 2).tolist(),
        }

    def to_json(self, extra: dict[str, Any] | None = None) -> str:
        """The trajectory (and ``extra`` fields such as the prediction) as a JSON document."""
        payload = {**(extra or {}), "trajectory": self.to_dict()}
        return json.dumps(payload, separators=(",", ":"))
