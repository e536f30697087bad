"""Three-stage DiffMIC training, resumable, single-process on CPU or under ``torchrun``.

1. ``global``: the DCG's global network and CAM head, cross-entropy.
2. ``local``: the ROI branch on the crops it will see at inference (the global network frozen, so the
   ROIs are those of inference), cross-entropy on the local and the fused logits. Then, on validation
   data, the fusion weights (``fusion="fitted"``) are fitted.
   ``encoder`` (only for a model with ``encoder_backbone``): the denoiser's own image encoder, with a
   linear classifier, cross-entropy on the image it reads (``encoder_view``: the full input or the global
   view); then frozen, so that it gives the denoiser evidence of its own and the next stage stays cached.
3. ``diffusion``: the denoiser learns to predict the noise of diffused labels (with the MMD regulariser).
   ``cached`` (the default): the frozen conditioning of several augmented views per image is computed
   once (``diffmic.conditioning``) and the head trains on it for hundreds of epochs; ``end-to-end``
   runs the networks at every step (for GPUs; ``joint_dcg`` also trains the DCG).

Every stage is validated on a split carved from the training data (never the test set) and ends when
its validation score has not improved for ``patience`` validations (or at its epoch cap); the EMA
weights of the best validation are kept. The diffusion stage is validated with the estimator that is
shipped (``val_options``: the app's DDPM, all T steps, 8 chains), whose softmax temperature is then
fitted on the same validation chains. At the end the distribution check (``diffmic.ood``) is fitted on the
training conditioning (every cached view) and its threshold on the validation conditioning. A checkpoint
(weights, optimiser, EMA, ``TrainState``) is written every few minutes and at every epoch's end: a stopped
run continues where it stopped.

The image stages run under bfloat16 autocast with channels-last tensors where the hardware has fast
bfloat16 (``precision="auto"``, ``diffmic.precision``); validation is always float32.
"""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path

from torch import nn

from .conditioning import ConditioningCache, build_cache
from .config import DiffMICConfig
from .data.datasets import Splits
from .dcg import check_local_from_global
from .model import DiffMIC, check_encoder_from_global
from .post_training import PostTrainingFits
from .stage_loop import StageLoop
from .stage_losses import StageLosses
from .train_config import (
    CHECKPOINT_NAME,
    FITTED_FIELDS,
    LOCAL_INITS,
    POST_HOC_FIELDS,
    STAGES,
    TrainConfig,
    TrainState,
)
from .validation import Validation
from .warm_start import StartFrom

__all__ = [
    "CHECKPOINT_NAME",
    "FITTED_FIELDS",
    "LOCAL_INITS",
    "POST_HOC_FIELDS",
    "STAGES",
    "TrainConfig",
    "TrainState",
    "Trainer",
    "train",
]


def _stage_modules(model: DiffMIC, stage: str, tc: TrainConfig) -> nn.ModuleList:
    """The modules a stage trains (and keeps an EMA of)."""
    dcg = model.dcg
    if stage == "global":
        return nn.ModuleList([dcg.global_net, dcg.cam_head])
    if stage == "local":
        return nn.ModuleList([dcg.local_net, dcg.attention_pool, dcg.local_head])
    if stage == "encoder":
        return nn.ModuleList([model.encoder, model.encoder_head])
    parts: list[nn.Module] = [model.denoiser]
    if tc.stage2 == "end-to-end":
        parts += [m for m in (model.encoder, model.encoder_head) if m is not None]
        parts += [dcg] if tc.joint_dcg else []
    return nn.ModuleList(parts)


class Trainer(StageLosses, Validation, PostTrainingFits, StartFrom, StageLoop):
    """Owns the model, the optimiser, the EMA and the checkpoint of one training run.

    The stages are defined here (what each trains, its learning rate, epoch cap and batches, what follows
    it); the loop is ``stage_loop.StageLoop``, the checkpoint ``checkpoint.Checkpointing``, the losses
    ``stage_losses.StageLosses``, the scores ``validation.Validation``, the fits after a stage and at the
    end ``post_training.PostTrainingFits``, training a saved model further ``warm_start.StartFrom``.
    """

    unchecked_fields = FITTED_FIELDS + POST_HOC_FIELDS

    def __init__(self, model_config: DiffMICConfig, train_config: TrainConfig, splits: Splits):
        self.cfg = model_config
        if train_config.local_init == "global":  # refused now, not after the global stage's hours
            check_local_from_global(model_config)
        if train_config.encoder_init == "global":
            check_encoder_from_global(model_config)
        self._start(train_config, splits, lambda: DiffMIC(model_config))
        self.cache: ConditioningCache | None = None
        self.val_cache: ConditioningCache | None = None
        self._new_stage(self.state.stage)

    # ------------------------------------------------------------ the stages
    def _stage_modules(self, stage: str) -> nn.ModuleList:
        return _stage_modules(self.model, stage, self.tc)

    def _lr(self, stage: str) -> float:
        return {
            "global": self.tc.global_lr,
            "local": self.tc.local_lr,
            "encoder": self.tc.encoder_lr,
            "diffusion": self.tc.lr,
        }[stage]

    def _epochs(self, stage: str) -> int:
        return {
            "global": self.tc.global_epochs,
            "local": self.tc.local_epochs,
            "encoder": self.tc.encoder_epochs,
        }.get(stage, self.tc.diffusion_epochs)

    def _batch_size(self, stage: str) -> int:
        return self.tc.diffusion_batch_size if self._cached(stage) else self.tc.batch_size

    def _validation_every(self, stage: str) -> int:
        return self.tc.val_every if self._cached(stage) else 1

    def _next_stage(self, stage: str) -> str:
        nxt = STAGES[STAGES.index(stage) + 1]
        return "diffusion" if nxt == "encoder" and self.model.encoder is None else nxt

    # ------------------------------------------------------------ the run
    def run(self) -> bool:
        """Train until done or out of time; True when all stages finished (the model is then saved)."""
        for stage in STAGES[STAGES.index(self.state.stage) :]:
            if stage == "encoder" and self.model.encoder is None:
                continue
            if not self._run_stage(stage):
                self.save_checkpoint()
                return False
        self.save_checkpoint()
        return True

    def _begin_stage(self, stage: str) -> None:
        if self._cached(stage) and self.cache is None:
            self.cache = self._training_cache()

    def _training_cache(self) -> ConditioningCache:
        path = self.out / "conditioning.npz"
        if path.is_file():
            return ConditioningCache.load(path)
        start = time.monotonic()
        cache = build_cache(
            self.model,
            self.splits.train,
            self.tc.cache_views,
            seed=self.tc.seed,
            progress=True,
            dtype=self.dtype,
        )
        if self.dist.main:
            self.out.mkdir(parents=True, exist_ok=True)
            cache.save(path)
            self.state.history.append({"stage": "cache", "seconds": round(time.monotonic() - start, 1)})
        return cache

    def _finish_stage(self, stage: str) -> None:
        self._restore_best()
        self._fit_after_stage(stage)
        if stage == "diffusion":
            if self.dist.main:
                self.finish()
            return
        nxt = self._next_stage(stage)
        self.state = dataclasses.replace(
            self.state, stage=nxt, epoch=0, batch=0, loss_sum=0.0, steps=0, best=-1.0, stale=0
        )
        self.best = None
        self._init_network(nxt)
        self._new_stage(nxt)

    def _init_network(self, stage: str) -> None:
        """A new local network's or encoder's start (before its stage's optimiser and EMA are made)."""
        if stage == "local" and self.tc.local_init == "global":
            self.model.dcg.local_from_global()
        if stage == "encoder" and self.tc.encoder_init == "global":
            self.model.encoder_from_global()


def train(
    model_config: DiffMICConfig,
    train_config: TrainConfig,
    splits: Splits,
    resume: bool = True,
    start_from: tuple[str | Path, str] | None = None,
) -> Path:
    """Train (or resume) a DiffMIC; returns the folder holding the model. Stops early at max_minutes.

    ``start_from`` = (saved model folder, stage): a new run begins at that stage with those weights
    (``Trainer.start_from``); a run that has a checkpoint resumes it instead."""
    trainer = Trainer(model_config, train_config, splits)
    if not (resume and trainer.resume()) and start_from is not None:
        trainer.start_from(*start_from)
    trainer.run()
    return trainer.out
