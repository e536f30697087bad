"""What DiffMIC's training fits on validation data besides the weights (``TrainConfig`` cannot set them):

- after the global stage, the map the ROIs are chosen from (``selection.choose_roi_map``);
- after the local stage, the fusion weights of the priors (``calibration.fit_fusion_weights``);
- at the end (``finish``): the temperature of the estimator that is shipped, the explanation choices
  (``selection.choose_explanations``) and the distribution check (``ood_fit.fit_distribution_check``);
  then the model and ``train_log.json`` are saved.

Each value is recorded in ``TrainState.fitted`` (so a resumed run keeps it) and applied to the model's
config (``FITTED_FIELDS``).
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict
from pathlib import Path

from .calibration import fit_fusion_weights, fit_temperature
from .conditioning import ConditioningCache, build_cache
from .config import DiffMICConfig
from .data.datasets import Splits
from .model import DiffMIC
from .ood_fit import fit_distribution_check
from .selection import choose_explanations, choose_roi_map
from .train_config import TrainConfig, TrainState


class PostTrainingFits:
    """The fits of ``train.Trainer`` after a stage and after the last one; reads its model, splits, state
    and caches, and its validation passes (``validation.Validation``)."""

    model: DiffMIC
    cfg: DiffMICConfig
    tc: TrainConfig
    splits: Splits
    state: TrainState
    out: Path
    cache: ConditioningCache | None
    _tick: float

    def _fit(self, **values) -> None:
        """Record values fitted on validation data and apply them to the model's config."""
        self.state.fitted.update(values)
        self._apply_fitted()

    def _apply_fitted(self) -> None:
        for key, value in self.state.fitted.items():
            setattr(self.cfg, key, tuple(value) if key == "fusion_weights" else value)
        self.cfg.validate()

    def _fit_after_stage(self, stage: str) -> None:
        """The ROI map after the global stage, the fusion weights after the local stage."""
        if stage == "global" and self.tc.choose_on_validation:
            mode, scores = choose_roi_map(self.model, self.splits.val)
            if mode is not None:
                self._fit(roi_map=mode)
                self.state.history.append({"stage": "choose roi_map", **scores})
        if stage == "local" and self.cfg.fusion == "fitted":
            res = self._dcg_outputs(self.splits.val)
            self._fit(fusion_weights=list(fit_fusion_weights(res["global"], res["local"], res["labels"])))

    def finish(self) -> None:
        """Fit the shipped estimator's temperature and the distribution check; save the model and the log."""
        y0, labels = self.validation_chains()
        self._fit(temperature=fit_temperature(y0, labels))
        if self.tc.choose_on_validation:
            values, scores = choose_explanations(self.model, self.splits.val)
            self._fit(**values)
            for key, values_scores in scores.items():
                self.state.history.append({"stage": f"choose {key}", **values_scores})
        self.fit_distribution_check()
        self.model.save_pretrained(self.out)
        log = {
            "train_config": asdict(self.tc),
            "data": {"train": len(self.splits.train), "validation": len(self.splits.val)},
            "history": self.state.history,
            "train_seconds": round(self.state.train_seconds + time.monotonic() - self._tick, 1),
            "fitted": self.state.fitted,
        }
        (self.out / "train_log.json").write_text(json.dumps(log, indent=2, default=str))

    def fit_distribution_check(self) -> None:
        """Fit ``diffmic.ood`` on the training conditioning (all cached views, or the unaugmented images when
        there is no cache) and its threshold on the validation conditioning."""
        cache = self.cache if self.cache is not None else build_cache(self.model, self.splits.train, 1)
        check, threshold = fit_distribution_check(self.model, cache, self._validation_cache())
        self.model.ood_check = check
        self._fit(ood_threshold=threshold)
