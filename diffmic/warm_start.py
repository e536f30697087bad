"""Training a saved model further: a new run begins at one stage with a finished model's weights
(``train --init-from MODEL --start-stage STAGE``).

The model config must be the saved one, but for the ROI options (``config.ROI_OPTIONS``) and two
architectures a run may renew from their stage on: the local branch's (``config.LOCAL_ARCHITECTURE``,
from the local stage or before: the saved global branch is kept) and the denoiser's own encoder
(``config.ENCODER_ARCHITECTURE``, added or changed from the encoder stage or before).
"""

from __future__ import annotations

from pathlib import Path

import torch

from .config import ENCODER_ARCHITECTURE, LOCAL_ARCHITECTURE, ROI_OPTIONS, DiffMICConfig
from .model import DiffMIC
from .train_config import STAGES, TrainState

# weights that start afresh when a saved model is trained further with another local architecture: the
# local branch's, and the denoiser's (its input width is the local embedding's)
NEW_WITH_LOCAL_BRANCH = ("dcg.local_net.", "dcg.attention_pool.", "dcg.local_head.", "denoiser.")
# ... and with another encoder of the denoiser's own (or a first one): the encoder's and the denoiser's
NEW_WITH_ENCODER = ("encoder.", "encoder_head.", "denoiser.")
RENEWABLE = (
    (LOCAL_ARCHITECTURE, "local", NEW_WITH_LOCAL_BRANCH),
    (ENCODER_ARCHITECTURE, "encoder", NEW_WITH_ENCODER),
)


def changed_fields(a: DiffMICConfig, b: DiffMICConfig) -> set[str]:
    """The config fields on which two configs differ, but for the ROI options (no weight depends on them)."""
    da, db = a.to_dict(), b.to_dict()
    return {k for k in da if da[k] != db[k]} - set(ROI_OPTIONS)


def renewed_weights(changed: set[str], asked: str, stage: str) -> tuple[tuple[str, ...], bool]:
    """The weight-name prefixes that start afresh for these changed fields, and whether the stage's own
    modules are among them (then there is no saved score to beat). ``asked`` is the stage asked for,
    ``stage`` the one the run begins at."""
    renewed: tuple[str, ...] = ()
    fresh_stage = False
    for fields, first_stage, prefixes in RENEWABLE:
        if not changed & set(fields):
            continue
        if STAGES.index(asked) > STAGES.index(first_stage):
            raise ValueError(
                f"a new {first_stage} architecture ({', '.join(sorted(changed & set(fields)))}) is "
                f"trained from the {first_stage} stage: begin at '{first_stage}' or earlier"
            )
        renewed += prefixes
        fresh_stage = fresh_stage or stage == first_stage
    return renewed, fresh_stage


class StartFrom:
    """``start_from`` of ``train.Trainer``: its model and config, a fresh stage, a first validation."""

    model: DiffMIC
    cfg: DiffMICConfig
    state: TrainState

    def start_from(self, folder: str | Path, stage: str) -> None:
        """Begin at ``stage`` with a saved model's weights (to train one stage of a finished model further).

        The renewed modules (see the module docstring) and the denoiser (whose input width follows them)
        start afresh. Otherwise the stage's validation score with the saved weights is the one to beat, so
        the stage keeps them unless it improves on them. Later stages and fits follow."""
        if stage not in STAGES:
            raise ValueError(f"unknown stage {stage!r}; use one of {', '.join(STAGES)}")
        asked = stage
        if stage == "encoder" and self.model.encoder is None:
            stage = "diffusion"  # a model without an encoder of its own has no encoder stage
        saved = DiffMIC.from_pretrained(folder, load_ood=False)
        changed = changed_fields(saved.config, self.cfg)
        if changed - set(LOCAL_ARCHITECTURE) - set(ENCODER_ARCHITECTURE):
            raise ValueError(
                f"{folder} holds a model of another config ({', '.join(sorted(changed))} differ)"
            )
        renewed, fresh_stage = renewed_weights(changed, asked, stage)
        self._load_saved(saved.state_dict(), renewed)
        self.state = TrainState(stage=stage)
        if fresh_stage:
            self._init_network(stage)
        self._new_stage(stage)
        entry = {"stage": stage, "epoch": 0, "start_from": str(folder)}
        if renewed:
            entry["new"] = sorted(changed)
        if fresh_stage:
            self.state.history.append(entry)
            return
        scores = self.validate(stage)
        self.state.history.append({**entry, **scores})
        self._keep_if_best(scores)

    def _load_saved(self, state_dict: dict[str, torch.Tensor], renewed: tuple[str, ...]) -> None:
        """The saved weights (as float32) into the model, but for those that start afresh."""
        weights = {
            k: v.float() if v.is_floating_point() else v
            for k, v in state_dict.items()
            if not k.startswith(renewed or ("-",))
        }
        missing, _ = self.model.load_state_dict(weights, strict=not renewed)
        assert all(k.startswith(renewed) for k in missing), missing
