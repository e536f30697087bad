"""How each DiffMIC training stage is scored on the validation split (never the test set).

The image stages by the macro-F1 of their own logits (each branch is selected on its own; the fusion
weights are fitted afterwards), computing only what the stage scores. The diffusion stage by the
estimator that is shipped (``TrainConfig.val_options``: the app's DDPM, all T steps, 8 chains) on the
validation conditioning, whose softmax temperature is fitted on the same chains.
"""

from __future__ import annotations

import numpy as np
import torch

from .calibration import fit_temperature
from .conditioning import ConditioningCache, build_cache
from .config import DiffMICConfig
from .data.datasets import Splits, batch_of
from .metrics import macro_f1
from .model import DiffMIC
from .pipeline import DiffMICPipeline
from .train_config import TrainConfig
from .transforms import normalise
from .uncertainty import answer_from_labels


class Validation:
    """``_validate`` of a stage and the validation passes ``train.Trainer`` shares with its fits."""

    model: DiffMIC
    cfg: DiffMICConfig
    tc: TrainConfig
    splits: Splits
    device: torch.device
    val_cache: ConditioningCache | None

    @torch.no_grad()
    def _dcg_outputs(self, dataset, parts: tuple[str, ...] = ("global", "local")) -> dict[str, np.ndarray]:
        """Logits of ``parts`` (global, local, encoder) and the labels of a dataset, computing no more: the
        global stage's validation never runs the local branch or the encoder."""
        self.model.eval()
        out: dict[str, list] = {part: [] for part in (*parts, "labels")}
        for start in range(0, len(dataset), 64):
            pixels, labels = batch_of(dataset, np.arange(start, min(start + 64, len(dataset))))
            x = normalise(pixels.numpy(), self.cfg).to(self.device)
            if "local" in parts:
                g = self.model.dcg(x)
                out["global"].append(g.global_logits.cpu().numpy())
                out["local"].append(g.local_logits.cpu().numpy())
            elif "global" in parts:
                out["global"].append(self.model.dcg.global_branch(x)[1].cpu().numpy())
            if "encoder" in parts:
                out["encoder"].append(self.model.encode(x)[1].cpu().numpy())
            out["labels"].append(labels.numpy())
        return {k: np.concatenate(v) for k, v in out.items()}

    def _validate(self, stage: str) -> dict[str, float]:
        c = self.cfg.num_classes
        if stage == "diffusion":
            return self._validate_diffusion()
        parts = {"global": ("global",), "local": ("global", "local"), "encoder": ("encoder",)}[stage]
        res = self._dcg_outputs(self.splits.val, parts)
        scores = {m: macro_f1(res["labels"], res[m].argmax(-1), c) for m in parts}
        if stage == "local":
            w = self.cfg.fusion_weights
            scores["fused"] = macro_f1(
                res["labels"], (w[0] * res["global"] + w[1] * res["local"]).argmax(-1), c
            )
        scores["score"] = scores[stage]  # each branch is selected on its own; the fusion is fitted afterwards
        return scores

    def _validate_diffusion(self) -> dict[str, float]:
        """The shipped estimator on the validation conditioning; also fits its temperature."""
        y0, labels = self.validation_chains()
        temperature = fit_temperature(y0, labels)
        answer = answer_from_labels(y0, temperature).numpy()
        one_chain = answer_from_labels(y0[:, :1], temperature).numpy()
        c = self.cfg.num_classes
        score = macro_f1(labels, answer.argmax(-1), c)
        return {
            "diffmic": score,
            "single": macro_f1(labels, one_chain.argmax(-1), c),
            "temperature": temperature,
            "score": score,
        }

    def validation_chains(self) -> tuple[np.ndarray, np.ndarray]:
        """Final label vectors (N, S, C) of the shipped estimator's chains on the validation images."""
        cache = self._validation_cache()
        pipe = DiffMICPipeline(self.model)
        self.model.eval()
        y0 = []
        options = self.tc.val_options.with_(prior="fused")
        for start in range(0, len(cache), 128):
            idx = np.arange(start, min(start + 128, len(cache)))
            features, priors, _ = cache.rows(idx, np.zeros(len(idx), dtype=np.int64))
            *_, last = pipe.denoise(
                features.to(self.device), priors[:, 0].to(self.device), options.with_(seed=start)
            )
            y0.append(last.sample.cpu().numpy())
        return np.concatenate(y0), cache.labels

    def _validation_cache(self) -> ConditioningCache:
        if self.val_cache is None or self.tc.stage2 == "end-to-end":
            self.val_cache = build_cache(self.model, self.splits.val, 1, seed=self.tc.seed)
        return self.val_cache
